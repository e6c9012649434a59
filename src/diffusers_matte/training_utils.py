# Copyright 2026 The diffusers-matte authors. Licensed under the Apache License, Version 2.0.
"""What every training script of diffusers-matte shares (imported by the scripts in `training/`, not copied).

- The optimiser and learning-rate schedule of the paper's appendix Table 4: `TABLE4_STAGES`, `get_optimizer`,
  `PolyMilestoneLambda`, `get_poly_milestone_scheduler`.
- Checkpoints in diffusers' examples layout (`output_dir/checkpoint-<step>/`): `list_checkpoints`,
  `get_latest_checkpoint`, `resolve_resume_checkpoint`, `prune_checkpoints`, and `save_checkpoint`, which writes a
  checkpoint to a temporary sibling directory and renames it into place, so that an interrupted write never
  replaces or corrupts a good checkpoint. Each checkpoint lists its files (`CHECKPOINT_FILES`); a checkpoint that
  lacks one of them (cut short by a kill while it was copied or deleted) is refused for resuming
  (`checkpoint_problems`). Pruning renames a checkpoint out of the `checkpoint-<step>` names before deleting it.
- Accelerate save/load hooks that store models as diffusers `save_pretrained` subfolders:
  `register_checkpoint_hooks` (or `make_save_model_hook` / `make_load_model_hook`). Models carrying peft (LoRA)
  adapters are stored whole (base and adapter weights, `PEFT_MODEL_STATE`) and restored exactly.
- `save_peft_adapter`: a model's LoRA adapter in peft's format (`adapter_config.json`,
  `adapter_model.safetensors`).
- `write_model_card`: a README.md with Apache-2.0 metadata for a training output, offline.

Seeding: use `accelerate.utils.set_seed`; `accelerator.save_state` stores and `load_state` restores the RNG states.
"""

import json
import logging
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Optional, Sequence, Union

import torch
from torch.optim.lr_scheduler import LambdaLR

logger = logging.getLogger(__name__)

PathLike = Union[str, os.PathLike]

CHECKPOINT_PREFIX = "checkpoint-"
# Unfinished checkpoints live in hidden siblings whose names do not start with "checkpoint", so neither
# `list_checkpoints` nor the diffusers examples' `startswith("checkpoint")` scans ever pick one up.
INCOMPLETE_PREFIX = ".incomplete-"
_CHECKPOINT_NAME = re.compile(rf"^{re.escape(CHECKPOINT_PREFIX)}(\d+)$")
# Written last into every checkpoint: its files and their sizes, to tell a whole checkpoint from a cut one.
CHECKPOINT_FILES = "checkpoint_files.json"


# ----------------------------------------------------------------------------------------------------------------
# Optimiser and schedule (appendix 6.2, Table 4)
# ----------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StageHyperparameters:
    """One row of the paper's appendix Table 4 (or appendix 6.3 for the sparse up-sampler).

    `lr_milestones` are optimiser steps; from each milestone on, the learning rate is the initial one times the
    matching entry of `lr_milestone_values` (see `PolyMilestoneLambda`). `train_batch_size` is the total over
    `num_gpus` A100s.
    """

    learning_rate: float
    max_train_steps: int
    train_batch_size: int
    lr_milestones: tuple[int, ...] = ()
    lr_milestone_values: tuple[float, ...] = ()
    num_gpus: int = 1


TABLE4_STAGES: dict[str, StageHyperparameters] = {
    # Sec. 3.2.1, "Soft Grounding in Semantic": the teacher (and the text adapter).
    "teacher": StageHyperparameters(5e-5, 50_000, 32, (15_000, 40_000), (0.5, 0.25), num_gpus=4),
    # Sec. 3.2.2, "Soft Grounding in Transparency": the student and the Phi projections.
    "distill": StageHyperparameters(5e-5, 50_000, 32, (10_000, 35_000), (0.4, 0.25), num_gpus=2),
    # Sec. 3.4, "From Soft Grounding to Alpha Matte": the matting decoder.
    "matting_decoder": StageHyperparameters(4e-4, 50_000, 16, (10_000, 35_000), (0.1, 0.05), num_gpus=1),
    # Appendix 6.3: the sparse up-sampling module (lr 2e-4, 10k iterations, batch 16); no milestones are given,
    # so it follows the plain poly-0.9 curve.
    "refiner": StageHyperparameters(2e-4, 10_000, 16),
}

ADAMW_WEIGHT_DECAY = 0.01  # appendix 6.2: "AdamW ... with weight decay as 0.01"
POLY_POWER = 0.9  # appendix 6.2: f(x) = (1 - x / total iterations) ** 0.9


def get_optimizer(
    params: Iterable[Any],
    learning_rate: float,
    weight_decay: float = ADAMW_WEIGHT_DECAY,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    use_8bit_adam: bool = False,
) -> torch.optim.Optimizer:
    """AdamW as in appendix 6.2 (weight decay 0.01); bitsandbytes' 8-bit AdamW on request, imported lazily."""
    if use_8bit_adam:
        try:
            import bitsandbytes as bnb
        except ImportError as error:
            raise ImportError("`use_8bit_adam=True` needs bitsandbytes: `pip install bitsandbytes`.") from error
        optimizer_class = bnb.optim.AdamW8bit
    else:
        optimizer_class = torch.optim.AdamW
    return optimizer_class(params, lr=learning_rate, betas=betas, weight_decay=weight_decay, eps=eps)


class PolyMilestoneLambda:
    """The learning-rate factor of appendix 6.2: "When the milestone is not reached, we use the lambda function
    f(x) = (1 - x / total iterations)^0.9 to adjust the learning rate. Otherwise, the learning rate is directly
    adjusted to the presented value."

    So before the first milestone the factor is the poly curve; from milestone i on it is the constant
    `values[i]` (Table 4's "Scheduler Value", a factor of the initial learning rate as LambdaLR applies it), until
    the next milestone. E.g. the semantic stage: poly until step 15k (factor 0.725 just before), 0.5 from 15k,
    0.25 from 40k to 50k. A callable object rather than a closure, so LambdaLR's `state_dict` saves it and a
    resumed run restores it.

    Args:
        total_steps: the "total iterations" of the poly curve.
        milestones: increasing steps at which the factor jumps to the matching value.
        values: the factor from each milestone on.
        power: exponent of the poly curve.
    """

    def __init__(
        self,
        total_steps: int,
        milestones: Sequence[int] = (),
        values: Sequence[float] = (),
        power: float = POLY_POWER,
    ):
        if total_steps <= 0:
            raise ValueError(f"`total_steps` must be positive, got {total_steps}.")
        if len(milestones) != len(values):
            raise ValueError(
                f"`milestones` and `values` must have the same length, got {list(milestones)} and {list(values)}."
            )
        if any(b <= a for a, b in zip(milestones, milestones[1:])) or any(m <= 0 for m in milestones):
            raise ValueError(f"`milestones` must be positive and strictly increasing, got {list(milestones)}.")
        if any(v < 0 for v in values):
            raise ValueError(f"`values` must be non-negative factors, got {list(values)}.")
        self.total_steps = int(total_steps)
        self.milestones = [int(m) for m in milestones]
        self.values = [float(v) for v in values]
        self.power = float(power)

    def __call__(self, step: int) -> float:
        reached = [value for milestone, value in zip(self.milestones, self.values) if step >= milestone]
        if reached:
            return reached[-1]
        return max(0.0, 1.0 - min(step, self.total_steps) / self.total_steps) ** self.power


def get_poly_milestone_scheduler(
    optimizer: torch.optim.Optimizer,
    total_steps: int,
    milestones: Sequence[int] = (),
    values: Sequence[float] = (),
    power: float = POLY_POWER,
    num_processes: int = 1,
    last_epoch: int = -1,
) -> LambdaLR:
    """LambdaLR with `PolyMilestoneLambda` (appendix 6.2 and Table 4).

    `num_processes`: accelerate's prepared scheduler steps once per process on every optimiser step (unless the
    batches are split), so, as diffusers' examples do for `get_scheduler`, the step counts are multiplied by it
    to keep the schedule in optimiser steps.
    """
    lr_lambda = PolyMilestoneLambda(
        total_steps * num_processes,
        [m * num_processes for m in milestones],
        values,
        power,
    )
    return LambdaLR(optimizer, lr_lambda, last_epoch=last_epoch)


# ----------------------------------------------------------------------------------------------------------------
# Checkpoints
# ----------------------------------------------------------------------------------------------------------------


def checkpoint_step(path: PathLike) -> int:
    """The step of a `checkpoint-<step>` directory."""
    match = _CHECKPOINT_NAME.match(Path(path).name)
    if match is None:
        raise ValueError(f"{str(path)!r} is not a `{CHECKPOINT_PREFIX}<step>` directory.")
    return int(match.group(1))


def list_checkpoints(output_dir: PathLike) -> list[Path]:
    """The complete `checkpoint-<step>` directories of `output_dir`, oldest (lowest step) first."""
    output_dir = Path(output_dir)
    if not output_dir.is_dir():
        return []
    found = [path for path in output_dir.iterdir() if path.is_dir() and _CHECKPOINT_NAME.match(path.name)]
    return sorted(found, key=checkpoint_step)


def get_latest_checkpoint(output_dir: PathLike) -> Optional[Path]:
    """The checkpoint with the highest step in `output_dir`, or None."""
    checkpoints = list_checkpoints(output_dir)
    return checkpoints[-1] if checkpoints else None


def resolve_resume_checkpoint(output_dir: PathLike, resume_from_checkpoint: Optional[str]) -> Optional[Path]:
    """The directory `--resume_from_checkpoint` names: `"latest"`, a path, or a name inside `output_dir`.

    Returns None (after a warning, as diffusers' examples do: "Starting a new training run") when it does not
    exist, and None without a warning when `resume_from_checkpoint` is None. A checkpoint that is incomplete
    (`checkpoint_problems`) raises `ValueError`: accelerate would resume from it with only an info message.
    """
    if resume_from_checkpoint is None:
        return None
    if resume_from_checkpoint == "latest":
        path = get_latest_checkpoint(output_dir)
    else:
        path = Path(resume_from_checkpoint)
        if not path.is_dir():
            path = Path(output_dir) / path.name
    if path is None or not path.is_dir():
        logger.warning(f"Checkpoint '{resume_from_checkpoint}' does not exist. Starting a new training run.")
        return None
    problems = checkpoint_problems(path)
    if problems:
        earlier = [p.name for p in list_checkpoints(path.parent) if p != path and not checkpoint_problems(p)]
        hint = f"resume from an earlier one (--resume_from_checkpoint {earlier[-1]})" if earlier else "start over"
        raise ValueError(
            f"Checkpoint {path} is incomplete ({'; '.join(problems[:3])}): it was cut short, e.g. by a kill while it "
            f"was copied or deleted. Delete it and {hint}."
        )
    return path


def checkpoint_problems(path: PathLike) -> list[str]:
    """What makes the checkpoint at `path` unfit to resume from; empty when it is whole.

    A checkpoint written by `save_checkpoint` lists its files and sizes in `CHECKPOINT_FILES`; each must be there
    with its size. One without that list (written by accelerate directly, or by an older version) must at least
    hold accelerate's optimizer, scheduler and random-state files.
    """
    path = Path(path)
    listing = path / CHECKPOINT_FILES
    if not listing.is_file():
        names = [p.name for p in path.iterdir()] if path.is_dir() else []
        expected = {
            "the optimizer state (optimizer*.bin / .safetensors)": "optimizer",
            "the scheduler state (scheduler*.bin)": "scheduler",
            "the random states (random_states_*.pkl)": "random_states_",
        }
        return [f"{what} missing" for what, prefix in expected.items() if not any(n.startswith(prefix) for n in names)]
    try:
        files = json.loads(listing.read_text(encoding="utf-8"))["files"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        return [f"unreadable {CHECKPOINT_FILES} ({error})"]
    problems = []
    for name, size in files.items():
        file = path / name
        if not file.is_file():
            problems.append(f"{name} missing")
        elif file.stat().st_size != size:
            problems.append(f"{name} has {file.stat().st_size} bytes instead of {size}")
    return problems


def _write_file_list(directory: Path) -> None:
    files = {
        str(p.relative_to(directory)): p.stat().st_size
        for p in sorted(directory.rglob("*"))
        if p.is_file() and p.name != CHECKPOINT_FILES
    }
    (directory / CHECKPOINT_FILES).write_text(json.dumps({"files": files}, indent=1) + "\n", encoding="utf-8")


def prune_checkpoints(
    output_dir: PathLike, checkpoints_total_limit: Optional[int], keep: Optional[PathLike] = None
) -> list[Path]:
    """Deletes the oldest checkpoints so that at most `checkpoints_total_limit` remain; returns the deleted ones.

    `save_checkpoint` prunes *after* a successful save (diffusers' examples prune before saving, which loses a
    good checkpoint when the save then fails), so the limit counts the new checkpoint; `train` prunes once more at
    the start, for a run killed between a save and its pruning. `keep` (the checkpoint a run resumes from) is
    never deleted. Each checkpoint is first renamed out of the `checkpoint-<step>` names, then deleted, so a kill
    half-way through leaves a hidden leftover (`remove_incomplete_checkpoints`), never a checkpoint with missing
    files.
    """
    if checkpoints_total_limit is None:
        return []
    if checkpoints_total_limit < 1:
        raise ValueError(f"`checkpoints_total_limit` must be at least 1, got {checkpoints_total_limit}.")
    checkpoints = list_checkpoints(output_dir)
    removed = checkpoints[: max(0, len(checkpoints) - checkpoints_total_limit)]
    if keep is not None:
        removed = [path for path in removed if path.resolve() != Path(keep).resolve()]
    if removed:
        logger.info(f"Removing {len(removed)} old checkpoint(s): {', '.join(path.name for path in removed)}")
    for path in removed:
        doomed = path.parent / f"{INCOMPLETE_PREFIX}{path.name}.removed"
        if doomed.exists():
            shutil.rmtree(doomed)
        os.replace(path, doomed)
        _fsync_dir(path.parent)
        shutil.rmtree(doomed)
    return removed


def remove_incomplete_checkpoints(output_dir: PathLike) -> list[Path]:
    """Deletes the temporary directories left by saves or prunings that were killed before they could clean up (a
    crash, SIGKILL, power loss); returns them. Call it on the main process at the start of a run.
    """
    output_dir = Path(output_dir)
    if not output_dir.is_dir():
        return []
    leftovers = [path for path in output_dir.iterdir() if path.name.startswith(INCOMPLETE_PREFIX)]
    for path in leftovers:
        logger.warning(f"Removing the unfinished checkpoint {path}.")
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    return leftovers


def _fsync_tree(directory: Path) -> None:
    """Flushes every file, then the directories, to disk, so a rename cannot publish data still in the page cache."""
    for root, _, files in os.walk(directory):
        for name in files:
            with open(os.path.join(root, name), "rb") as handle:
                os.fsync(handle.fileno())
    _fsync_dir(directory)


def _fsync_dir(directory: Path) -> None:
    try:
        descriptor = os.open(directory, os.O_RDONLY)
    except OSError:  # some platforms cannot open directories
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


def atomic_write_directory(
    final_dir: PathLike,
    write: Callable[[str], Any],
    overwrite: bool = False,
    fsync: bool = True,
) -> Path:
    """Runs `write(temporary_dir)`, then renames the temporary directory to `final_dir`.

    The temporary directory is a hidden sibling of `final_dir` (same file system, so the rename is atomic). If
    `write` raises, it is deleted and `final_dir` is untouched; if the process dies, it stays behind under a name no
    checkpoint scan matches (see `remove_incomplete_checkpoints`). An existing `final_dir` raises `FileExistsError`
    unless `overwrite=True`; it is then moved aside, replaced, and deleted only once the new one is in place.
    """
    final_dir = Path(final_dir)
    if final_dir.exists() and not overwrite:
        raise FileExistsError(f"{final_dir} already exists; pass `overwrite=True` to replace it.")
    final_dir.parent.mkdir(parents=True, exist_ok=True)
    temporary = final_dir.parent / f"{INCOMPLETE_PREFIX}{final_dir.name}"
    if temporary.exists():
        shutil.rmtree(temporary)
    temporary.mkdir()
    try:
        write(str(temporary))
        if fsync:
            _fsync_tree(temporary)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise
    previous = None
    if final_dir.exists():
        previous = final_dir.parent / f"{INCOMPLETE_PREFIX}{final_dir.name}.previous"
        if previous.exists():
            shutil.rmtree(previous)
        os.replace(final_dir, previous)
    os.replace(temporary, final_dir)
    if fsync:
        _fsync_dir(final_dir.parent)
    if previous is not None:
        shutil.rmtree(previous)
    return final_dir


def save_checkpoint(
    accelerator: Any,
    output_dir: PathLike,
    global_step: int,
    checkpoints_total_limit: Optional[int] = None,
    overwrite: bool = False,
) -> Path:
    """`accelerator.save_state` into `output_dir/checkpoint-<global_step>`, atomically, then pruning.

    Call it where diffusers' examples call `save_state`: on the main process (`accelerator.is_main_process`), for
    plain DDP or single-device training. DeepSpeed and FSDP, whose `save_state` runs on every process, are not
    supported by this helper.
    """
    if accelerator.project_configuration.automatic_checkpoint_naming:
        raise ValueError(
            "`save_checkpoint` names the checkpoint itself; create the Accelerator with a ProjectConfiguration "
            "whose `automatic_checkpoint_naming` is False (the default)."
        )
    final_dir = Path(output_dir) / f"{CHECKPOINT_PREFIX}{global_step}"

    def write(directory: str) -> None:
        accelerator.save_state(directory)
        _write_file_list(Path(directory))

    atomic_write_directory(final_dir, write, overwrite=overwrite)
    logger.info(f"Saved state to {final_dir}")
    prune_checkpoints(output_dir, checkpoints_total_limit)
    return final_dir


# ----------------------------------------------------------------------------------------------------------------
# Accelerate hooks: models as diffusers `save_pretrained` subfolders
# ----------------------------------------------------------------------------------------------------------------


def unwrap_model(accelerator: Any, model: torch.nn.Module) -> torch.nn.Module:
    """The model under accelerate's wrappers (DDP, mixed precision) and `torch.compile`."""
    model = accelerator.unwrap_model(model)
    return getattr(model, "_orig_mod", model)


def _subfolder_of(model: torch.nn.Module, subfolders: Mapping[type, str]) -> Optional[str]:
    """The subfolder of the model's own class, else of its nearest listed base class."""
    if type(model) in subfolders:
        return subfolders[type(model)]
    for cls in type(model).__mro__:
        if cls in subfolders:
            return subfolders[cls]
    return None


# A model with peft adapters is checkpointed whole: its config, and every weight (base layers and adapters) under
# the names the live, adapter-carrying model has, which `load_state_dict(strict=True)` restores exactly.
PEFT_MODEL_STATE = "peft_model_state.safetensors"
PEFT_ADAPTER_CONFIG, PEFT_ADAPTER_WEIGHTS = "adapter_config.json", "adapter_model.safetensors"


def has_peft_adapters(model: torch.nn.Module) -> bool:
    """Whether `model` carries peft adapters (e.g. after diffusers' `add_adapter(LoraConfig(...))`)."""
    return bool(getattr(model, "peft_config", None))


def save_peft_adapter(model: torch.nn.Module, directory: PathLike, adapter_name: str = "default") -> Path:
    """Write the adapter `adapter_name` of `model` in peft's format: `adapter_config.json` (its `LoraConfig`) and
    `adapter_model.safetensors` (`peft.get_peft_model_state_dict`). It loads back with
    `model.load_lora_adapter(directory, weight_name="adapter_model.safetensors", prefix=None)` on the same base
    model, or with peft's `set_peft_model_state_dict` after `add_adapter(LoraConfig.from_pretrained(directory))`.
    Weights that are trained in full (e.g. a new head) are not part of the adapter."""
    from peft import get_peft_model_state_dict
    from safetensors.torch import save_file

    if adapter_name not in (getattr(model, "peft_config", None) or {}):
        raise ValueError(f"{type(model).__name__} has no peft adapter named {adapter_name!r}.")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    model.peft_config[adapter_name].save_pretrained(str(directory))
    state = get_peft_model_state_dict(model, adapter_name=adapter_name)
    save_file({k: v.detach().cpu().contiguous() for k, v in state.items()}, str(directory / PEFT_ADAPTER_WEIGHTS))
    return directory


def _save_peft_model(model: torch.nn.Module, directory: str) -> None:
    from safetensors.torch import save_file

    os.makedirs(directory, exist_ok=True)
    model.save_config(directory)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(state, os.path.join(directory, PEFT_MODEL_STATE))
    save_peft_adapter(model, directory)


def make_save_model_hook(accelerator: Any, subfolders: Mapping[type, str]) -> Callable:
    """An `accelerator.register_save_state_pre_hook` hook: every model whose class is in `subfolders` is written
    with `save_pretrained(checkpoint/<subfolder>)` (on the main process) instead of accelerate's `model_<i>` file;
    a model with peft adapters is written whole (`PEFT_MODEL_STATE`, plus its adapter in peft's format).

    Models of other classes stay with accelerate; they keep their relative order, which the load hook preserves.
    """

    def save_model_hook(models: list, weights: list, output_dir: str) -> None:
        handled = []
        for index, model in enumerate(models):
            unwrapped = unwrap_model(accelerator, model)
            subfolder = _subfolder_of(unwrapped, subfolders)
            if subfolder is None:
                continue
            if subfolder in (name for _, name in handled):
                raise ValueError(
                    f"Two prepared models map to the subfolder {subfolder!r}; give each model class its own."
                )
            handled.append((index, subfolder))
            if accelerator.is_main_process:
                if has_peft_adapters(unwrapped):
                    _save_peft_model(unwrapped, os.path.join(output_dir, subfolder))
                else:
                    unwrapped.save_pretrained(os.path.join(output_dir, subfolder))
        # Pop in reverse so the remaining indices stay valid; accelerate saves what is left as model_0, model_1...
        for index, _ in reversed(handled):
            if index < len(weights):
                weights.pop(index)

    return save_model_hook


def make_load_model_hook(accelerator: Any, subfolders: Mapping[type, str]) -> Callable:
    """An `accelerator.register_load_state_pre_hook` hook, the inverse of `make_save_model_hook`: reloads every
    model of a listed class from `checkpoint/<subfolder>` (config included) and removes it from accelerate's list.
    A model with peft adapters gets back every weight under its own names (`strict`), so a LoRA run resumes exactly.
    """
    from safetensors.torch import load_file

    def load_model_hook(models: list, input_dir: str) -> None:
        for index in reversed(range(len(models))):
            unwrapped = unwrap_model(accelerator, models[index])
            subfolder = _subfolder_of(unwrapped, subfolders)
            if subfolder is None:
                continue
            peft_state = os.path.join(input_dir, subfolder, PEFT_MODEL_STATE)
            live, saved = has_peft_adapters(unwrapped), os.path.isfile(peft_state)
            if live != saved:
                raise ValueError(
                    f"The model {subfolder!r} to resume {'has' if live else 'has no'} LoRA adapters, but the "
                    f"checkpoint {input_dir} was saved {'without' if live else 'with'} them: resume with the same "
                    "--use_lora setting."
                )
            if os.path.isfile(peft_state):
                unwrapped.load_state_dict(load_file(peft_state), strict=True)
            else:
                loaded = type(unwrapped).from_pretrained(input_dir, subfolder=subfolder)
                unwrapped.register_to_config(**loaded.config)
                unwrapped.load_state_dict(loaded.state_dict())
                del loaded
            models.pop(index)

    return load_model_hook


def register_checkpoint_hooks(accelerator: Any, subfolders: Mapping[type, str]) -> tuple:
    """Registers both hooks on `accelerator`, e.g. `{MatteUNet2DConditionModel: "unet", TextAdapter: "text_adapter"}`;
    returns the two removable handles. Register before `accelerator.prepare` or after; before `save_state`.
    """
    return (
        accelerator.register_save_state_pre_hook(make_save_model_hook(accelerator, subfolders)),
        accelerator.register_load_state_pre_hook(make_load_model_hook(accelerator, subfolders)),
    )


# ----------------------------------------------------------------------------------------------------------------
# Model cards
# ----------------------------------------------------------------------------------------------------------------

DEFAULT_TAGS = (
    "diffusers",
    "diffusers-matte",
    "image-matting",
    "text-guided-matting",
    "diffusers-training",
)


def write_model_card(
    output_dir: PathLike,
    template_path: Optional[PathLike] = None,
    template_str: Optional[str] = None,
    model_description: str = "",
    base_model: Optional[str] = None,
    datasets: Optional[Sequence[str]] = None,
    tags: Sequence[str] = (),
    overwrite: bool = False,
    **template_values: Any,
) -> Path:
    """Writes `output_dir/README.md`, a model card with `license: apache-2.0` metadata, without the network.

    diffusers' `load_or_create_model_card` treats a local directory without a README as a Hub repo id (an
    `HFValidationError`), so the card is rendered straight from a template with huggingface_hub's
    `ModelCard.from_template`.

    Args:
        output_dir: the training output directory.
        template_path: a Jinja template (e.g. from the repository's `model_cards/`); diffusers' training
            template when neither it nor `template_str` is given.
        template_str: the template as a string (e.g. `TRAINING_CARD_TEMPLATE`). `{{ card_data }}` is the YAML metadata, `{{ model_description }}` the text.
        model_description: the card's description.
        base_model: the model the run started from (Hub id or path), recorded in the metadata.
        datasets: dataset names recorded in the metadata.
        tags: extra tags, after the default ones.
        overwrite: replace an existing README.md (otherwise `FileExistsError`).
        template_values: more variables for the template.
    """
    from huggingface_hub import ModelCard, ModelCardData

    path = Path(output_dir) / "README.md"
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} already exists; pass `overwrite=True` to replace it.")
    if template_path is None and template_str is None:
        from diffusers.utils.hub_utils import MODEL_CARD_TEMPLATE_PATH

        template_path = MODEL_CARD_TEMPLATE_PATH
    if template_str is None and not Path(template_path).is_file():
        raise FileNotFoundError(f"Model card template {str(template_path)!r} does not exist.")
    card_data = ModelCardData(
        license="apache-2.0",
        library_name="diffusers",
        base_model=base_model,
        datasets=list(datasets) if datasets else None,
        tags=list(dict.fromkeys([*DEFAULT_TAGS, *tags])),
    )
    card = ModelCard.from_template(
        card_data,
        template_path=None if template_str is not None else str(template_path),
        template_str=template_str,
        model_description=model_description,
        **template_values,
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    card.save(path)
    return path


#: The card of a training output: what the stage is, then the run (`training_summary` in `training_loop`).
TRAINING_CARD_TEMPLATE = """---
{{ card_data }}
---

# {{ title }}

{{ model_description }}

## Training

{{ training_summary }}

## Use

```python
from diffusers_matte import SoftGroundingMattingPipeline

pipe = SoftGroundingMattingPipeline.from_pretrained("<this folder or repository>")
```

(for a whole pipeline; the folders of the first two stages are read by the next stage's script).
"""

_HUB_CACHE_FOLDER = re.compile(r"^models--([^/]+?)--(.+)$")


def hub_model_id(name_or_path: str) -> Optional[str]:
    """The Hub id a model was loaded from: `name_or_path` itself when it is not a local folder, the id of a Hub
    cache snapshot (`.../models--<org>--<name>/snapshots/<sha>`), the `base_model` a training output's card
    records; None for another local folder (a local path is no id to publish)."""
    path = Path(name_or_path)
    if not path.exists():
        return str(name_or_path)
    for part in reversed(path.resolve().parts):
        match = _HUB_CACHE_FOLDER.match(part)
        if match:
            return f"{match.group(1)}/{match.group(2)}"
    card = path / "README.md"
    if card.is_file():
        match = re.search(r"^base_model:\s*(\S+)\s*$", card.read_text(encoding="utf-8"), re.MULTILINE)
        if match:
            return match.group(1).strip("'\"")
    return None


def write_tiny_base_model(path: PathLike, seed: int = 0) -> Path:
    """Write a tiny Stable-Diffusion-shaped folder (vae, text_encoder, tokenizer, unet) of random weights, to try
    the training scripts offline on a CPU in seconds (the tests' models; what it learns means nothing):

        python -c "from diffusers_matte.training_utils import write_tiny_base_model as w; w('tiny-sd')"
    """
    from diffusers import UNet2DConditionModel

    from .testing import get_dummy_components, get_dummy_unet_init_dict

    path = Path(path)
    components = get_dummy_components()
    for name in ("vae", "text_encoder", "tokenizer"):
        components[name].save_pretrained(path / name)
    torch.manual_seed(seed)
    UNet2DConditionModel(**get_dummy_unet_init_dict()).save_pretrained(path / "unet")
    return path
