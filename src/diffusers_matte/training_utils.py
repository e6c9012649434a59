# Copyright 2026 The diffusers-matte authors. Licensed under the Apache License, Version 2.0.
"""What every training script of diffusers-matte shares (imported by the scripts in `training/`, not copied).

- The optimiser and learning-rate schedule of the paper's appendix Table 4: `TABLE4_STAGES`, `get_optimizer`,
  `PolyMilestoneLambda`, `get_poly_milestone_scheduler`.
- Checkpoints in diffusers' examples layout (`output_dir/checkpoint-<step>/`): `list_checkpoints`,
  `get_latest_checkpoint`, `resolve_resume_checkpoint`, `prune_checkpoints`, and `save_checkpoint`, which writes a
  checkpoint to a temporary sibling directory and renames it into place, so that an interrupted write never
  replaces or corrupts a good checkpoint.
- Accelerate save/load hooks that store models as diffusers `save_pretrained` subfolders:
  `register_checkpoint_hooks` (or `make_save_model_hook` / `make_load_model_hook`).
- `write_model_card`: a README.md with Apache-2.0 metadata for a training output, offline.

Seeding: use `accelerate.utils.set_seed`; `accelerator.save_state` stores and `load_state` restores the RNG states.
"""

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
    "semantic": StageHyperparameters(5e-5, 50_000, 32, (15_000, 40_000), (0.5, 0.25), num_gpus=4),
    # Sec. 3.2.2, "Soft Grounding in Transparency": the student and the Phi projections.
    "transparency": StageHyperparameters(5e-5, 50_000, 32, (10_000, 35_000), (0.4, 0.25), num_gpus=2),
    # Sec. 3.4, "From Soft Grounding to Alpha Matte": the matting decoder.
    "decoder": StageHyperparameters(4e-4, 50_000, 16, (10_000, 35_000), (0.1, 0.05), num_gpus=1),
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
    exist, and None without a warning when `resume_from_checkpoint` is None.
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
    return path


def prune_checkpoints(output_dir: PathLike, checkpoints_total_limit: Optional[int]) -> list[Path]:
    """Deletes the oldest checkpoints so that at most `checkpoints_total_limit` remain; returns the deleted ones.

    `save_checkpoint` prunes *after* a successful save (diffusers' examples prune before saving, which loses a
    good checkpoint when the save then fails), so the limit counts the new checkpoint.
    """
    if checkpoints_total_limit is None:
        return []
    if checkpoints_total_limit < 1:
        raise ValueError(f"`checkpoints_total_limit` must be at least 1, got {checkpoints_total_limit}.")
    checkpoints = list_checkpoints(output_dir)
    removed = checkpoints[: max(0, len(checkpoints) - checkpoints_total_limit)]
    if removed:
        logger.info(f"Removing {len(removed)} old checkpoint(s): {', '.join(path.name for path in removed)}")
    for path in removed:
        shutil.rmtree(path)
    return removed


def remove_incomplete_checkpoints(output_dir: PathLike) -> list[Path]:
    """Deletes the temporary directories left by saves that were killed before they could clean up (a crash,
    SIGKILL, power loss); returns them. Call it on the main process at the start of a run.
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
    atomic_write_directory(final_dir, accelerator.save_state, overwrite=overwrite)
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


def make_save_model_hook(accelerator: Any, subfolders: Mapping[type, str]) -> Callable:
    """An `accelerator.register_save_state_pre_hook` hook: every model whose class is in `subfolders` is written
    with `save_pretrained(checkpoint/<subfolder>)` (on the main process) instead of accelerate's `model_<i>` file.

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
                unwrapped.save_pretrained(os.path.join(output_dir, subfolder))
        # Pop in reverse so the remaining indices stay valid; accelerate saves what is left as model_0, model_1...
        for index, _ in reversed(handled):
            if index < len(weights):
                weights.pop(index)

    return save_model_hook


def make_load_model_hook(accelerator: Any, subfolders: Mapping[type, str]) -> Callable:
    """An `accelerator.register_load_state_pre_hook` hook, the inverse of `make_save_model_hook`: reloads every
    model of a listed class from `checkpoint/<subfolder>` (config included) and removes it from accelerate's list.
    """

    def load_model_hook(models: list, input_dir: str) -> None:
        for index in reversed(range(len(models))):
            unwrapped = unwrap_model(accelerator, models[index])
            subfolder = _subfolder_of(unwrapped, subfolders)
            if subfolder is None:
                continue
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
            template when left out. `{{ card_data }}` is the YAML metadata, `{{ model_description }}` the text.
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
    if template_path is None:
        from diffusers.utils.hub_utils import MODEL_CARD_TEMPLATE_PATH

        template_path = MODEL_CARD_TEMPLATE_PATH
    if not Path(template_path).is_file():
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
        template_path=str(template_path),
        model_description=model_description,
        **template_values,
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    card.save(path)
    return path
