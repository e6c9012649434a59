# Copyright 2026 The diffusers-matte authors. Licensed under the Apache License, Version 2.0.
"""What the three training scripts in `training/` share: arguments, frozen encoders, data and the loop.

The scripts stay flat and readable, in the style of diffusers' `examples/`: each builds its models and defines
how one batch becomes a loss; this module runs the rest (accelerate, gradient accumulation, clipping, the
appendix Table 4 schedule, checkpoints with `--resume_from_checkpoint latest`, logging).
"""

import argparse
import hashlib
import importlib.util
import json
import math
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import datasets
import numpy as np
import torch
from accelerate import Accelerator
from accelerate.logging import get_logger
from accelerate.utils import DataLoaderConfiguration, ProjectConfiguration, set_seed
from torch import nn
from tqdm.auto import tqdm

from . import training_utils
from .data.targets import MORPHOLOGY_KERNEL_SIZE
from .data.transforms import TrainingTransform, collate_training_examples
from .pipelines.soft_grounding.pipeline_soft_grounding import encode_latents, tokenize

logger = get_logger(__name__)

TRAIN_LOG = "train_log.jsonl"


STAGE_SCRIPTS = {
    "semantic": "training/train_teacher.py",
    "transparency": "training/train_distill.py",
    "decoder": "training/train_matting_decoder.py",
    "refiner": "training/train_refiner.py",
}


def add_training_args(parser: argparse.ArgumentParser, stage: str) -> None:
    """The arguments every stage takes, named as in diffusers' training examples.

    `stage` names the row of the paper's appendix Table 4 (`training_utils.TABLE4_STAGES`) whose learning rate,
    steps, per-device batch and milestones are the defaults.
    """
    table = training_utils.TABLE4_STAGES[stage]
    parser.set_defaults(stage=stage)
    add = parser.add_argument
    add(
        "--pretrained_model_name_or_path",
        required=True,
        help="Stable Diffusion folder or Hub id (vae, text_encoder, tokenizer)",
    )
    add("--revision", default=None)
    add(
        "--variant",
        default=None,
        help="weights variant of the pretrained model, e.g. fp16",
    )
    add(
        "--output_dir",
        required=True,
        help="where checkpoints and the trained models are written",
    )
    add("--seed", type=int, default=0)
    add(
        "--resolution",
        type=int,
        default=512,
        help="square training size (512 in the paper)",
    )
    add(
        "--train_batch_size",
        type=int,
        default=table.train_batch_size // table.num_gpus,
        help="per device",
    )
    add("--max_train_steps", type=int, default=table.max_train_steps)
    add("--gradient_accumulation_steps", type=int, default=1)
    add("--gradient_checkpointing", action="store_true")
    add("--learning_rate", type=float, default=table.learning_rate)
    add(
        "--lr_scheduler",
        default="poly",
        help="'poly' (appendix Table 4) or any diffusers scheduler name",
    )
    add("--lr_power", type=float, default=training_utils.POLY_POWER)
    add(
        "--lr_milestones",
        type=float,
        nargs="*",
        default=[m / table.max_train_steps for m in table.lr_milestones],
        help="milestones of the 'poly' schedule as fractions of --max_train_steps (Table 4's by default)",
    )
    add(
        "--lr_milestone_values",
        type=float,
        nargs="*",
        default=list(table.lr_milestone_values),
    )
    add("--lr_warmup_steps", type=int, default=0, help="for the diffusers schedulers")
    add("--adam_beta1", type=float, default=0.9)
    add("--adam_beta2", type=float, default=0.999)
    add("--adam_weight_decay", type=float, default=training_utils.ADAMW_WEIGHT_DECAY)
    add("--adam_epsilon", type=float, default=1e-8)
    add("--max_grad_norm", type=float, default=1.0)
    add("--checkpointing_steps", type=int, default=500)
    add("--checkpoints_total_limit", type=int, default=None)
    add(
        "--resume_from_checkpoint",
        default=None,
        help="a checkpoint folder, or 'latest'",
    )
    add(
        "--overwrite_output_dir",
        action="store_true",
        help="start a new run in an --output_dir that holds files: its checkpoints, train_log.jsonl and tracker "
        "logs are deleted first (without this, or --resume_from_checkpoint, such a folder is refused)",
    )
    add("--mixed_precision", choices=["no", "fp16", "bf16"], default=None)
    add(
        "--report_to",
        default="tensorboard",
        help="tensorboard, wandb, comet_ml, mlflow, clearml, aim, dvclive, all, or none (checked before training)",
    )
    add("--logging_dir", default="logs")
    add("--tracker_project_name", default=None)
    add("--dataloader_num_workers", type=int, default=0)
    add(
        "--dataset",
        action="append",
        default=None,
        metavar="NAME=FOLDER",
        help="a training set, repeatable: refmatte=, refcoco=, p3m10k=, am2k=, rm1k= or folder= followed by the "
        "folder of the download (read by its loader; a captions.json inside is read for P3M-10k, AM-2k and "
        "folders), 'synthetic', or a folder written by datasets' save_to_disk (default: synthetic)",
    )
    add(
        "--data_schedule",
        choices=["paper", "mix"],
        default="paper",
        help="with several sets: 'paper' (Sec. 4.1: RefMatte on odd steps, RefCOCO on even ones, one step from "
        "P3M-10k / AM-2k / RM-1k / folders after every four, with fallbacks for missing sets) or 'mix' (each "
        "step's set drawn in proportion to its size); a function of --seed and the step, so resuming is exact",
    )
    add(
        "--refcoco_alpha",
        choices=["pseudo", "mask"],
        default="pseudo",
        help="RefCOCO's alpha: the pseudo-alphas of training/make_refcoco_alpha.py (the paper's) or the binary masks",
    )
    add(
        "--dataset_cache_dir",
        default=None,
        help="datasets cache the loaders build into (default: the datasets library's)",
    )
    add(
        "--no_augment",
        action="store_true",
        help="no augmentation at all (appendix 6.2's is on for the real sets; the synthetic set never has any)",
    )
    add(
        "--no_rssn",
        action="store_true",
        help="P3M-10k and AM-2k rows get only the flip, not GFM's composition route (blur, noise, crop)",
    )
    add(
        "--synthetic_num_train",
        type=int,
        default=2000,
        help="images of the synthetic set (--dataset synthetic)",
    )
    add("--synthetic_image_size", type=int, default=256)
    add("--max_train_samples", type=int, default=None)
    add(
        "--morphology_kernel_size",
        type=int,
        default=None,
        help=f"erosion kernel of the region map, at --resolution (default: the paper's {MORPHOLOGY_KERNEL_SIZE} at 512, "
        "scaled with --resolution, at least 1)",
    )
    add(
        "--cache_latents",
        action="store_true",
        help="keep each image's z_I in memory after its first encoding (the VAE is frozen and the inputs are not "
        "augmented, so it never changes): on small sets this saves the VAE encoder's share of every step",
    )
    add(
        "--validation_image",
        action="append",
        default=None,
        help="an image to predict during training (repeatable; paired with --validation_prompt)",
    )
    add(
        "--validation_prompt",
        action="append",
        default=None,
        help="the sentence of the --validation_image at the same position (repeatable; one prompt serves every "
        "image, one image every prompt)",
    )
    add(
        "--validation_steps",
        type=int,
        default=500,
        help="predict the validation pairs every this many steps (and at the end): images under "
        "<output_dir>/validation/ and in the trackers, the last grid in the model card",
    )
    add(
        "--use_ema",
        action="store_true",
        help="keep an exponential moving average of the trained weights (diffusers' EMAModel), saved as the output",
    )
    add("--ema_decay", type=float, default=0.9999, help="decay of --use_ema")
    add(
        "--allow_tf32",
        action="store_true",
        help="TF32 matrix products on Ampere GPUs (faster; see PyTorch's notes on precision)",
    )
    add(
        "--scale_lr",
        action="store_true",
        help="multiply --learning_rate by gradient accumulation x batch size x processes, as diffusers' examples do",
    )
    add(
        "--base_model_id",
        default=None,
        help="the Hub id the model card names as base model when --pretrained_model_name_or_path is a local folder",
    )
    add(
        "--push_to_hub",
        action="store_true",
        help="upload the result, with its code (as `pipe.push_to_hub` does); the token and the repository are "
        "checked before training",
    )
    add("--hub_model_id", default=None)
    add("--hub_token", default=None)


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """`--help` shows every option's default (diffusers' examples leave users to read the code)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        help = action.help or ""
        if "%(default)" in help or not action.option_strings or action.default in (None, False, argparse.SUPPRESS):
            return help
        return f"{help} (default: %(default)s)" if help else "default: %(default)s"


def make_parser(description: str) -> argparse.ArgumentParser:
    """The parser of a stage script, its `--help` with defaults."""
    return argparse.ArgumentParser(description=description, formatter_class=HelpFormatter)


def validation_pairs(args: argparse.Namespace) -> list[tuple[str, str]]:
    """`(image path, prompt)` pairs of `--validation_image` / `--validation_prompt`."""
    images, prompts = args.validation_image or [], args.validation_prompt or []
    if not images and not prompts:
        return []
    if not images or not prompts:
        raise ValueError("--validation_image and --validation_prompt go together: give both.")
    if len(images) == 1:
        images = images * len(prompts)
    elif len(prompts) == 1:
        prompts = prompts * len(images)
    if len(images) != len(prompts):
        raise ValueError(
            f"--validation_image ({len(images)}) and --validation_prompt ({len(prompts)}) must pair up: as many of "
            "each, or one of either."
        )
    return list(zip(images, prompts))


def kernel_for_resolution(resolution: int) -> int:
    """The region map's erosion kernel at `resolution`: the paper's 15 at 512, scaled with the size."""
    return max(1, round(MORPHOLOGY_KERNEL_SIZE * resolution / 512))


def validate_args(args: argparse.Namespace) -> None:
    if args.morphology_kernel_size is None:
        args.morphology_kernel_size = kernel_for_resolution(args.resolution)
    if len(args.lr_milestones) != len(args.lr_milestone_values):
        raise ValueError(
            f"--lr_milestones and --lr_milestone_values need the same number of entries, got "
            f"{args.lr_milestones} and {args.lr_milestone_values}."
        )
    for name in (
        "resolution",
        "train_batch_size",
        "max_train_steps",
        "gradient_accumulation_steps",
        "checkpointing_steps",
        "morphology_kernel_size",
    ):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name} must be a positive integer, got {getattr(args, name)}.")
    if args.validation_steps < 1:
        raise ValueError(f"--validation_steps must be a positive integer, got {args.validation_steps}.")
    for path in args.validation_image or []:
        if not Path(path).is_file():
            raise FileNotFoundError(f"--validation_image {path!r} is not a file.")
    validation_pairs(args)


# Trackers accelerate can report to, and the packages each needs.
TRACKER_PACKAGES = {
    "tensorboard": ("tensorboard", "tensorboardX"),
    "wandb": ("wandb",),
    "comet_ml": ("comet_ml",),
    "mlflow": ("mlflow",),
    "clearml": ("clearml",),
    "aim": ("aim",),
    "dvclive": ("dvclive",),
}


def check_tracker(report_to: str) -> None:
    """Refuse `--report_to` naming a tracker whose package is not installed (accelerate would only warn and train
    untracked)."""
    if report_to in ("none", "all"):
        return
    if report_to not in TRACKER_PACKAGES:
        raise ValueError(
            f"--report_to: expected one of {', '.join([*TRACKER_PACKAGES, 'all', 'none'])}, got {report_to!r}."
        )
    if not any(importlib.util.find_spec(name) for name in TRACKER_PACKAGES[report_to]):
        raise ValueError(
            f"--report_to {report_to} needs the {TRACKER_PACKAGES[report_to][0]} package: "
            f"pip install {TRACKER_PACKAGES[report_to][0]} (or pass --report_to none)."
        )


def prepare_hub_repo(args: argparse.Namespace) -> Optional[str]:
    """With `--push_to_hub`, check the token and create (or find) the repository now, so that a Hub problem stops
    the run before training rather than after it; returns the repository id."""
    if not args.push_to_hub:
        return None
    import huggingface_hub

    token = args.hub_token or huggingface_hub.get_token()
    if not token:
        raise ValueError("--push_to_hub needs a Hugging Face token: run `hf auth login`, or pass --hub_token.")
    name = args.hub_model_id or Path(args.output_dir).name
    try:
        return huggingface_hub.create_repo(name, exist_ok=True, token=token).repo_id
    except Exception as error:  # offline, refused token, no rights: all stop the run here
        message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ValueError(f"--push_to_hub: cannot create or reach the repository {name!r}: {message}") from None


def run_artifacts(args: argparse.Namespace) -> list[Path]:
    """What a training run writes into `--output_dir` besides its models: checkpoints, their leftovers, the step
    log and the tracker logs."""
    output_dir = Path(args.output_dir)
    if not output_dir.is_dir():
        return []
    found = [
        p
        for p in output_dir.iterdir()
        if p.name.startswith((training_utils.CHECKPOINT_PREFIX, training_utils.INCOMPLETE_PREFIX))
        or p.name == TRAIN_LOG
    ]
    logging_dir = output_dir / args.logging_dir
    return sorted(found + ([logging_dir] if logging_dir.exists() else []))


def check_output_dir(args: argparse.Namespace) -> None:
    """Refuse to start a new run in an `--output_dir` that holds files (it would mix two runs: checkpoints ranked
    together, models overwritten, one log for both), unless `--resume_from_checkpoint` or
    `--overwrite_output_dir` says what to do with them."""
    output_dir = Path(args.output_dir)
    if output_dir.exists() and not output_dir.is_dir():
        raise ValueError(f"--output_dir {str(output_dir)!r} is a file, not a folder.")
    if args.resume_from_checkpoint is not None or getattr(args, "overwrite_output_dir", False):
        return
    if output_dir.is_dir() and any(output_dir.iterdir()):
        found = ", ".join(sorted(p.name for p in output_dir.iterdir())[:5])
        raise ValueError(
            f"--output_dir {str(output_dir)!r} already holds files ({found}); pass --resume_from_checkpoint latest "
            "to continue that run, --overwrite_output_dir to start over (its checkpoints and logs are deleted), or "
            "another --output_dir."
        )


def make_accelerator(args: argparse.Namespace) -> Accelerator:
    """An `Accelerator` writing to `output_dir`, with a seedable sampler so resumed runs continue exactly.

    Before anything is loaded: the output folder (`check_output_dir`), the tracker (`check_tracker`) and, with
    `--push_to_hub`, the Hub repository (`prepare_hub_repo`, on the main process; its id goes to
    `args.hub_repo_id`) are checked. With `--overwrite_output_dir` the old run's checkpoints and logs are deleted.
    """
    check_output_dir(args)
    check_tracker(args.report_to)
    project = ProjectConfiguration(
        project_dir=args.output_dir,
        logging_dir=os.path.join(args.output_dir, args.logging_dir),
    )
    accelerator = Accelerator(
        gradient_accumulation_steps=args.gradient_accumulation_steps,
        mixed_precision=args.mixed_precision,
        log_with=None if args.report_to == "none" else args.report_to,
        project_config=project,
        dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True),
    )
    set_seed(args.seed)
    if accelerator.is_main_process:
        args.hub_repo_id = prepare_hub_repo(args)
        if getattr(args, "overwrite_output_dir", False) and args.resume_from_checkpoint is None:
            for path in run_artifacts(args):
                logger.warning(f"--overwrite_output_dir: deleting {path}")
                shutil.rmtree(path) if path.is_dir() else path.unlink()
        os.makedirs(args.output_dir, exist_ok=True)
    accelerator.wait_for_everyone()
    return accelerator


def weight_dtype(accelerator: Accelerator) -> torch.dtype:
    """The dtype of the frozen models under mixed precision."""
    return {"fp16": torch.float16, "bf16": torch.bfloat16}.get(accelerator.mixed_precision, torch.float32)


@dataclass
class FrozenEncoders:
    """The frozen VAE encoder and CLIP text encoder that feed every stage."""

    vae: nn.Module
    text_encoder: nn.Module
    tokenizer: object
    latent_cache: dict | None = None  # digest of an image's pixels -> its z_I, when enabled

    @classmethod
    def from_pretrained(cls, args: argparse.Namespace, accelerator: Accelerator) -> "FrozenEncoders":
        from diffusers import AutoencoderKL
        from transformers import CLIPTextModel, CLIPTokenizer

        path, kw = args.pretrained_model_name_or_path, dict(revision=args.revision)
        encoders = cls(
            vae=AutoencoderKL.from_pretrained(path, subfolder="vae", variant=args.variant, **kw),
            text_encoder=CLIPTextModel.from_pretrained(path, subfolder="text_encoder", **kw),
            tokenizer=CLIPTokenizer.from_pretrained(path, subfolder="tokenizer", **kw),
            latent_cache={} if getattr(args, "cache_latents", False) else None,
        )
        for model in (encoders.vae, encoders.text_encoder):
            model.requires_grad_(False).eval().to(accelerator.device, weight_dtype(accelerator))
        return encoders

    @property
    def latent_factor(self) -> int:
        return 2 ** (len(self.vae.config.block_out_channels) - 1)

    @torch.no_grad()
    def encode_image(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """z_I, exactly as the pipeline computes it (looked up, for images seen before, when caching)."""
        if self.latent_cache is None:
            return encode_latents(self.vae, pixel_values, self.vae.device).float()
        keys = [hashlib.blake2b(p.numpy().tobytes()).digest() for p in pixel_values.cpu()]
        new = [i for i, key in enumerate(keys) if key not in self.latent_cache]
        if new:
            latents = encode_latents(self.vae, pixel_values[new], self.vae.device)
            self.latent_cache.update(zip([keys[i] for i in new], latents.float().cpu()))
        return torch.stack([self.latent_cache[key] for key in keys]).to(self.vae.device)

    @torch.no_grad()
    def encode_text(self, texts: list[str]) -> torch.Tensor:
        """f_T: CLIP hidden states (the trainable text adapter is applied by the caller)."""
        ids, _ = tokenize(self.tokenizer, self.text_encoder, texts)
        return self.text_encoder(ids.to(self.text_encoder.device))[0].float()


# The sets `--dataset name=folder` reads, each through its own loader, straight from the user's download.
DATASET_NAMES = ("refmatte", "refcoco", "p3m10k", "am2k", "rm1k", "folder")
# The sets whose rows are referring expressions (augmented by flips that swap "left" and "right" only) and the
# image-level matting sets GFM's composition route (RSSN) applies to (appendix 6.2).
RSSN_SOURCES = ("p3m10k", "am2k")
CAPTIONS_FILE = "captions.json"


class DatasetArgumentError(FileNotFoundError):
    """A `--dataset` value that names no known set, a missing folder, or a folder without the set's layout."""


@dataclass
class DatasetSpec:
    """One `--dataset` value: `synthetic`, a `save_to_disk` folder, or `name=folder`."""

    value: str
    name: str
    path: Optional[Path] = None


def parse_dataset_arg(value: str) -> DatasetSpec:
    """`synthetic`, `<save_to_disk folder>` or `<name>=<folder>` (`name` one of `DATASET_NAMES`)."""
    if value == "synthetic":
        return DatasetSpec(value, "synthetic")
    name, sep, path = value.partition("=")
    if not sep:
        return DatasetSpec(value, "", Path(value).expanduser())
    name = name.strip().lower().replace("-", "")
    if name not in DATASET_NAMES:
        raise ValueError(
            f"--dataset {value!r}: unknown set {name!r}; expected one of {', '.join(DATASET_NAMES)} (as "
            "name=folder), 'synthetic', or a save_to_disk folder."
        )
    return DatasetSpec(value, name, Path(path).expanduser())


def _is_saved_dataset(path: Path) -> bool:
    return any((path / name).is_file() for name in ("dataset_dict.json", "dataset_info.json", "state.json"))


def _load_saved(path: Path) -> datasets.Dataset:
    rows = datasets.load_from_disk(str(path))
    if isinstance(rows, datasets.DatasetDict):
        if "train" not in rows:
            raise KeyError(f"it has the splits {list(rows)} but no 'train' split")
        rows = rows["train"]
    return rows


def load_dataset_spec(spec: DatasetSpec, args: argparse.Namespace) -> datasets.Dataset:
    """The training rows of one `--dataset` value (its train split)."""
    if spec.name == "synthetic":
        from .data.synthetic import load_synthetic_matting

        return load_synthetic_matting(
            num_train=args.synthetic_num_train,
            num_test=0,
            seed=args.seed,
            image_size=args.synthetic_image_size,
        )["train"]
    what = "expected 'synthetic' or a save_to_disk folder" if not spec.name else f"the {spec.name} folder"
    if not spec.path.is_dir():
        raise DatasetArgumentError(f"--dataset {spec.value!r}: {what} {str(spec.path)!r} does not exist.")
    cache_dir = getattr(args, "dataset_cache_dir", None)
    captions = spec.path / CAPTIONS_FILE
    captions = str(captions) if captions.is_file() else None
    try:
        if not spec.name or _is_saved_dataset(spec.path):
            return _load_saved(spec.path)
        if spec.name == "refmatte":
            from .data.refmatte import load_refmatte

            return load_refmatte(spec.path, split="train", cache_dir=cache_dir)
        if spec.name == "refcoco":
            from .data.refcoco import load_refcoco

            rows = load_refcoco(spec.path, splits=("train",), alpha_source=args.refcoco_alpha, cache_dir=cache_dir)
            return rows["train"]
        if spec.name == "p3m10k":
            from .data.p3m import load_p3m10k

            return load_p3m10k(spec.path, split="train", captions_file=captions, cache_dir=cache_dir)
        if spec.name == "am2k":
            from .data.am2k import load_am2k

            return load_am2k(spec.path, split="train", captions_file=captions, cache_dir=cache_dir)
        from .data.folder import load_image_alpha_folder

        rows = load_image_alpha_folder(spec.path, captions_file=captions, source=spec.name, cache_dir=cache_dir)
        return rows["train"] if isinstance(rows, datasets.DatasetDict) else rows
    except (FileNotFoundError, KeyError, ValueError, OSError) as error:
        message = str(error).strip() or type(error).__name__
        raise DatasetArgumentError(
            f"--dataset {spec.value!r}: {str(spec.path)!r} does not have the layout of {what}: {message}"
        ) from None


def load_train_sets(args: argparse.Namespace) -> dict[str, datasets.Dataset]:
    """Every `--dataset` as `{name: rows}`, in the order given. A save_to_disk folder is named by its rows'
    `source` when they share one (so a saved RefMatte copy takes RefMatte's place in the schedule), else by its
    folder name."""
    from accelerate import PartialState

    values = args.dataset or ["synthetic"]
    specs = [parse_dataset_arg(value) for value in values]  # all names checked before anything is read
    found: dict[str, datasets.Dataset] = {}
    with PartialState().main_process_first():  # the loaders build a datasets cache: once, on the main process
        for spec in specs:
            rows = load_dataset_spec(spec, args)
            name = spec.name
            if not name:
                sources = set(rows.unique("source")) if "source" in rows.column_names else set()
                name = sources.pop() if len(sources) == 1 else spec.path.name
            if name in found:
                raise ValueError(f"--dataset {spec.value!r}: a second set named {name!r}; give each set once.")
            if args.max_train_samples is not None:
                rows = rows.select(range(min(args.max_train_samples, len(rows))))
            if len(rows) == 0:
                raise DatasetArgumentError(f"--dataset {spec.value!r}: {str(spec.path)!r} holds no training rows.")
            found[name] = rows
    args.train_sets = {name: (spec.value, len(rows)) for spec, (name, rows) in zip(specs, found.items())}
    return found


def load_train_rows(args: argparse.Namespace) -> datasets.Dataset:
    """The rows of the first `--dataset` (the synthetic set by default)."""
    return next(iter(load_train_sets(args).values()))


def make_augmentations(args: argparse.Namespace) -> dict:
    """The augmentation of appendix 6.2 for each source, by the rows' `source` column: GFM's composition route
    (RSSN: background blur with the image's union alpha, Gaussian noise, GFM's crop for the image-level sets, and a
    horizontal flip) for RefMatte's composites and, unless `--no_rssn`, for P3M-10k and AM-2k; a flip alone
    elsewhere. Every flip swaps "left" and "right" in the expression. The synthetic set is not augmented;
    `--no_augment` turns everything off."""
    from .data.augment import CompositeAugment

    if args.no_augment:
        return {}
    flip = CompositeAugment(p_noise=0.0, p_flip=0.5)
    rssn = CompositeAugment(p_noise=0.5, p_flip=0.5, p_blur=0.5, crop=True)
    augment = dict.fromkeys(("refcoco", "rm1k", "folder"), flip)
    augment["refmatte"] = CompositeAugment(p_noise=0.5, p_flip=0.5, p_blur=0.5)
    for name in RSSN_SOURCES:
        augment[name] = flip if args.no_rssn else rssn
    return augment


class RowDataset(torch.utils.data.Dataset):
    """Rows of the common data schema, from one set or several, turned into training tensors, reproducibly.

    Indices are global over the sets, in their order. An integer `index` (the shuffled one-set loader) draws the
    expression and augmentation from `(seed, epoch, index)`; an `(index, draw)` pair (the scheduled loader) from
    `(seed, draw)`, `draw` numbering the samples of the run, so a resumed run sees exactly the batches of an
    uninterrupted one. Each example also carries `dataset`, the name of its set. Rows of images with several
    instances get the union of their alphas (for RefMatte's background blur).
    """

    def __init__(self, rows, transform: TrainingTransform, seed: int):
        self.sets = dict(rows) if isinstance(rows, dict) else {"": rows}
        self.names = list(self.sets)
        self.offsets = np.cumsum([0] + [len(r) for r in self.sets.values()]).tolist()
        self.transform, self.seed, self.epoch = transform, seed, 0
        self._siblings: dict[str, dict[str, list[int]]] = {}

    @property
    def rows(self) -> datasets.Dataset:
        return self.sets[self.names[0]]

    @property
    def lengths(self) -> dict[str, int]:
        return {name: len(rows) for name, rows in self.sets.items()}

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.offsets[-1]

    def _union_alpha(self, name: str, row: dict) -> Optional[np.ndarray]:
        augment = self.transform.augment_for(row.get("source", ""))
        if augment is None or not getattr(augment, "p_blur", 0) or "image_id" not in row:
            return None
        rows = self.sets[name]
        if name not in self._siblings:
            by_image: dict[str, list[int]] = {}
            for i, image_id in enumerate(rows["image_id"]):
                by_image.setdefault(image_id, []).append(i)
            self._siblings[name] = by_image
        union = None
        for i in self._siblings[name].get(row["image_id"], []):
            alpha = np.asarray(rows[i]["alpha"].convert("L"), dtype=np.float32) / 255.0
            union = alpha if union is None or union.shape != alpha.shape else np.maximum(union, alpha)
        return union

    def __getitem__(self, key) -> dict:
        if isinstance(key, tuple):
            index, draw = key
            self.transform.rng = np.random.default_rng([self.seed, 1, draw])
        else:
            index = key
            self.transform.rng = np.random.default_rng([self.seed, self.epoch, index])
        k = int(np.searchsorted(self.offsets, index, side="right")) - 1
        name, row = self.names[k], self.sets[self.names[k]][index - self.offsets[k]]
        example = self.transform(row, union_alpha=self._union_alpha(name, row))
        example["dataset"] = name or row.get("source", "")
        return example


class _StepSchedule:
    """A per-step schedule read once per optimiser step: micro-batch `m` trains on the source of step
    `m // gradient_accumulation_steps`."""

    def __init__(self, schedule, accumulation: int):
        self.schedule, self.accumulation = schedule, accumulation

    def source(self, step: int) -> str:
        return self.schedule.source(step // self.accumulation)


class ProcessScheduledBatchSampler(torch.utils.data.Sampler):
    """This process's share of the scheduled batches: each micro-batch of the run is drawn as one batch of
    `batch_size x num_processes` rows from the schedule's source (`ScheduledBatchSampler`) and split between the
    processes, so every process trains on the same set at every step. Yields `(index, draw)` pairs for
    `RowDataset`; `start_step` (in micro-batches) resumes."""

    def __init__(self, lengths, batch_size, schedule, num_steps, seed, num_processes=1, process_index=0):
        self.lengths, self.batch_size, self.schedule = dict(lengths), batch_size, schedule
        self.num_steps, self.seed, self.start_step = num_steps, seed, 0
        self.num_processes, self.process_index = num_processes, process_index

    def __len__(self) -> int:
        return max(self.num_steps - self.start_step, 0)

    def __iter__(self):
        from .data.schedule import ScheduledBatchSampler

        total = self.batch_size * self.num_processes
        sampler = ScheduledBatchSampler(
            self.lengths, total, self.schedule, num_steps=self.num_steps, start_step=self.start_step, seed=self.seed
        )
        first = self.process_index * self.batch_size
        for step, batch in enumerate(sampler, start=self.start_step):
            mine = batch[first : first + self.batch_size]
            yield [(index, step * total + first + k) for k, index in enumerate(mine)]


def make_schedule(args: argparse.Namespace, lengths: dict[str, int]):
    """`--data_schedule paper`: the paper's order (`DataSchedule`; RefMatte on odd steps, RefCOCO on even ones,
    a special step from the other sets after every four); `mix`: sets drawn in proportion to their size."""
    from .data.schedule import DEFAULT_EVEN, DEFAULT_ODD, DEFAULT_SPECIAL, DataSchedule, ProportionalSchedule

    if args.data_schedule == "mix":
        return ProportionalSchedule(lengths, seed=args.seed)
    special = [*DEFAULT_SPECIAL, *(n for n in lengths if n not in (DEFAULT_ODD, DEFAULT_EVEN, *DEFAULT_SPECIAL))]
    return DataSchedule(list(lengths), special=special, seed=args.seed)


def make_transform(args: argparse.Namespace, latent_factor: int) -> TrainingTransform:
    return TrainingTransform(
        resolution=args.resolution,
        latent_factor=latent_factor,
        alpha_factors=(),
        kernel_size=args.morphology_kernel_size,
        augment=make_augmentations(args),
    )


def make_dataloader(args: argparse.Namespace, latent_factor: int) -> torch.utils.data.DataLoader:
    """One set: its rows shuffled each epoch (the loader `train` hands to accelerate). Several sets: one batch per
    step from the step's set (`--data_schedule`), a function of the seed and the step, split between the processes
    here (this loader is not prepared by accelerate)."""
    from accelerate import PartialState

    sets = load_train_sets(args)
    dataset = RowDataset(sets, make_transform(args, latent_factor), args.seed)
    if len(sets) == 1:
        return torch.utils.data.DataLoader(
            dataset,
            batch_size=args.train_batch_size,
            shuffle=True,
            drop_last=True,
            collate_fn=collate_training_examples,
            num_workers=args.dataloader_num_workers,
        )
    state = PartialState()
    sampler = ProcessScheduledBatchSampler(
        dataset.lengths,
        args.train_batch_size,
        _StepSchedule(make_schedule(args, dataset.lengths), args.gradient_accumulation_steps),
        num_steps=args.max_train_steps * args.gradient_accumulation_steps,
        seed=args.seed,
        num_processes=state.num_processes,
        process_index=state.process_index,
    )
    return torch.utils.data.DataLoader(
        dataset,
        batch_sampler=sampler,
        collate_fn=collate_training_examples,
        num_workers=args.dataloader_num_workers,
    )


def train(
    args: argparse.Namespace,
    accelerator: Accelerator,
    models: dict[str, nn.Module],
    dataloader: torch.utils.data.DataLoader,
    step_fn: Callable[[dict, dict[str, nn.Module], Callable[[torch.Tensor], None]], dict[str, float]],
    validate_fn: Optional[Callable[[dict[str, nn.Module], torch.Tensor, str], dict]] = None,
) -> dict[str, nn.Module]:
    """Run the optimisation loop; returns the trained models, unwrapped (with `--use_ema`, holding the averaged
    weights).

    Args:
        models: the trainable models by the subfolder name they are saved under (`save_pretrained`).
        step_fn: `step_fn(batch, prepared_models, backward)` computes the loss of one batch, calls
            `backward(loss)` itself (so a `capture()` block can stay open during backward), and returns the
            floats to log.
        validate_fn: `validate_fn(models, pixels, prompt)` -> `{name: PIL image}`, the stage's prediction for one
            validation pair (`pixels`: `(1, 3, R, R)` in [-1, 1], preprocessed as the training images); run every
            `--validation_steps` and at the end (`log_validation`).
    """
    if getattr(args, "allow_tf32", False) and torch.cuda.is_available():
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    if getattr(args, "scale_lr", False) and not getattr(args, "_lr_scaled", False):
        args.learning_rate *= args.gradient_accumulation_steps * args.train_batch_size * accelerator.num_processes
        args._lr_scaled = True
    params = [p for model in models.values() for p in model.parameters() if p.requires_grad]
    emas = make_ema_models(args, models, accelerator)
    optimizer = training_utils.get_optimizer(
        params,
        learning_rate=args.learning_rate,
        weight_decay=args.adam_weight_decay,
        betas=(args.adam_beta1, args.adam_beta2),
        eps=args.adam_epsilon,
    )
    scheduler = make_scheduler(args, optimizer, accelerator.num_processes)
    names = list(models)
    # The scheduled loader already gives each process its share of every step's batch.
    scheduled = isinstance(dataloader.batch_sampler, ProcessScheduledBatchSampler)
    prepared = accelerator.prepare(*models.values(), optimizer, *([] if scheduled else [dataloader]), scheduler)
    wrapped = dict(zip(names, prepared[: len(names)]))
    if scheduled:
        optimizer, scheduler = prepared[len(names) :]
    else:
        optimizer, dataloader, scheduler = prepared[len(names) :]
    # drop_last: an epoch without a full batch would loop forever
    if not scheduled and len(dataloader) == 0:
        raise ValueError(
            f"--train_batch_size {args.train_batch_size} x {accelerator.num_processes} process(es) is more than "
            f"the {len(dataloader.dataset)} training rows: there is no full batch to train on."
        )
    training_utils.register_checkpoint_hooks(accelerator, {type(m): name for name, m in models.items()})
    if emas:
        register_ema_hooks(accelerator, emas)

    global_step, first_epoch, skip_batches = 0, 0, 0
    if accelerator.is_main_process:
        training_utils.remove_incomplete_checkpoints(args.output_dir)
    checkpoint = training_utils.resolve_resume_checkpoint(args.output_dir, args.resume_from_checkpoint)
    if accelerator.is_main_process:  # a run killed between a save and its pruning left one checkpoint too many
        training_utils.prune_checkpoints(args.output_dir, args.checkpoints_total_limit, keep=checkpoint)
    if checkpoint is not None:
        accelerator.print(f"Resuming from checkpoint {checkpoint}")
        accelerator.load_state(str(checkpoint))
        global_step = training_utils.checkpoint_step(checkpoint)
    if checkpoint is not None and not scheduled:
        updates_per_epoch = math.ceil(len(dataloader) / args.gradient_accumulation_steps)
        first_epoch, done = divmod(global_step, updates_per_epoch)
        skip_batches = done * args.gradient_accumulation_steps

    if accelerator.is_main_process:
        config = {k: v for k, v in vars(args).items() if isinstance(v, (int, float, str, bool))}
        accelerator.init_trackers(args.tracker_project_name or Path(args.output_dir).name, config=config)
    progress = tqdm(
        range(args.max_train_steps),
        initial=global_step,
        desc="Steps",
        disable=not accelerator.is_local_main_process,
    )
    log_path = Path(args.output_dir) / TRAIN_LOG
    if accelerator.is_main_process:  # the steps after the checkpoint are done again: their old lines go
        truncate_train_log(log_path, global_step)
    for model in wrapped.values():
        model.train()
    epoch = first_epoch
    while global_step < args.max_train_steps:
        if scheduled:  # the schedule is a function of the step: a resumed run starts at its step
            dataloader.batch_sampler.start_step = global_step * args.gradient_accumulation_steps
            batches = dataloader
        else:
            dataloader.set_epoch(epoch)
            dataloader.dataset.set_epoch(epoch)
            batches = accelerator.skip_first_batches(dataloader, skip_batches) if skip_batches else dataloader
        skip_batches = 0
        for batch in batches:
            with accelerator.accumulate(*wrapped.values()):
                logs = step_fn(batch, wrapped, accelerator.backward)
                if accelerator.sync_gradients:
                    accelerator.clip_grad_norm_(params, args.max_grad_norm)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
            if not accelerator.sync_gradients:
                continue
            global_step += 1
            for name, ema in emas.items():
                ema.step(_trained_params(models[name]))
            progress.update(1)
            logs = {
                **mean_over_processes(accelerator, logs),
                "lr": scheduler.get_last_lr()[0],
            }
            logs["processes"] = accelerator.num_processes
            progress.set_postfix(loss=f"{logs.get('loss', float('nan')):.4f}")
            accelerator.log(logs, step=global_step)
            if accelerator.is_main_process:
                sets = sorted(set(batch.get("dataset", ())))
                with log_path.open("a") as f:  # the set(s) of this step's batch, for the schedule's record
                    f.write(json.dumps({"step": global_step, **logs, "source": ",".join(sets)}) + "\n")
            if global_step % args.checkpointing_steps == 0 and accelerator.is_main_process:
                training_utils.save_checkpoint(
                    accelerator,
                    args.output_dir,
                    global_step,
                    args.checkpoints_total_limit,
                )
            if (
                validate_fn is not None
                and global_step % args.validation_steps == 0
                and global_step < args.max_train_steps
            ):
                log_validation(args, accelerator, models, emas, validate_fn, global_step)
            if global_step >= args.max_train_steps:
                break
        epoch += 1
    accelerator.wait_for_everyone()
    for name, ema in emas.items():  # the averaged weights are the stage's output
        ema.copy_to(_trained_params(models[name]))
    if validate_fn is not None:
        log_validation(args, accelerator, models, {}, validate_fn, global_step, final=True)
    return {name: accelerator.unwrap_model(model) for name, model in wrapped.items()}


def _trained_params(model: nn.Module) -> list:
    return [p for p in model.parameters() if p.requires_grad]


EMA_STATE = "ema_state.pt"


def make_ema_models(args: argparse.Namespace, models: dict[str, nn.Module], accelerator: Accelerator) -> dict:
    """With `--use_ema`, one diffusers `EMAModel` per trained model, over its trained parameters."""
    if not getattr(args, "use_ema", False):
        return {}
    from diffusers.training_utils import EMAModel

    emas = {}
    for name, model in models.items():
        emas[name] = EMAModel(_trained_params(model), decay=args.ema_decay)
        emas[name].to(accelerator.device)
    return emas


def register_ema_hooks(accelerator: Accelerator, emas: dict) -> None:
    """Checkpoints hold the averages (`EMA_STATE`), so a resumed run continues them exactly."""

    def save(models, weights, output_dir):
        if accelerator.is_main_process:
            torch.save({name: ema.state_dict() for name, ema in emas.items()}, os.path.join(output_dir, EMA_STATE))

    def load(models, input_dir):
        path = os.path.join(input_dir, EMA_STATE)
        if not os.path.isfile(path):
            raise ValueError(
                f"--use_ema: the checkpoint {input_dir} has no {EMA_STATE}; resume with the same --use_ema."
            )
        state = torch.load(path, map_location="cpu", weights_only=True)
        for name, ema in emas.items():
            ema.load_state_dict(state[name])
            ema.to(accelerator.device)

    accelerator.register_save_state_pre_hook(save)
    accelerator.register_load_state_pre_hook(load)


VALIDATION_DIR = "validation"
VALIDATION_GRID = "validation_grid.png"


def load_validation_pixels(path: str, resolution: int) -> tuple[torch.Tensor, "PIL.Image.Image"]:  # noqa: F821
    """A validation image preprocessed as the training images are (`prepare_pixels`, square), and its RGB view."""
    from .pipelines.soft_grounding.image_processor import load_image, open_image, prepare_pixels

    image = load_image(open_image(path))
    pixels = prepare_pixels(image, resolution, keep_aspect_ratio=False)[0]
    return pixels, _to_pil((pixels[0] + 1.0) / 2.0)


def _to_pil(image: torch.Tensor):
    import PIL.Image

    array = image.detach().float().cpu().clamp(0, 1).numpy()
    array = np.round(array.transpose(1, 2, 0) * 255).astype(np.uint8) if array.ndim == 3 else array
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    return PIL.Image.fromarray(array).convert("RGB")


def log_validation(
    args: argparse.Namespace,
    accelerator: Accelerator,
    models: dict[str, nn.Module],
    emas: dict,
    validate_fn: Callable,
    step: int,
    final: bool = False,
) -> Optional[Path]:
    """Predict every validation pair with the models as they are (the averages, with `--use_ema`), in eval mode,
    without touching the random state; save the images under `<output_dir>/validation/step-<step>/`, log them to
    the trackers (TensorBoard, wandb) and, at the end, write the grid of the model card. Main process only."""
    pairs = validation_pairs(args)
    if not pairs or not accelerator.is_main_process:
        return None
    import PIL.Image

    modes = {name: model.training for name, model in models.items()}
    for name, ema in emas.items():
        ema.store(_trained_params(models[name]))
        ema.copy_to(_trained_params(models[name]))
    rng_state = torch.get_rng_state()
    rows = []
    try:
        for model in models.values():
            model.eval()
        with torch.no_grad():
            for image_path, prompt in pairs:
                pixels, shown = load_validation_pixels(image_path, args.resolution)
                predictions = validate_fn(models, pixels, prompt)
                size = shown.size
                # maps of classes (RGB) keep their colours, alphas (L) are interpolated
                shown_predictions = [
                    img.resize(size, PIL.Image.NEAREST if img.mode == "RGB" else PIL.Image.BILINEAR).convert("RGB")
                    for img in predictions.values()
                ]
                rows.append((prompt, [shown, *shown_predictions]))
                kinds = list(predictions)
    finally:
        torch.set_rng_state(rng_state)
        for name, model in models.items():
            model.train(modes[name])
        for name, ema in emas.items():
            ema.restore(_trained_params(models[name]))
    folder = Path(args.output_dir) / VALIDATION_DIR / f"step-{step}"
    folder.mkdir(parents=True, exist_ok=True)
    for i, (_, images) in enumerate(rows):
        for kind, image in zip(["image", *kinds], images):
            image.save(folder / f"{i}-{kind}.png")
    for tracker in accelerator.trackers:
        if tracker.name == "tensorboard":
            for k, kind in enumerate(["image", *kinds]):
                stacked = np.stack([np.asarray(images[k]) for _, images in rows])
                tracker.writer.add_images(f"validation/{kind}", stacked, step, dataformats="NHWC")
            tracker.writer.flush()
        elif tracker.name == "wandb":
            import wandb

            tracker.log(
                {
                    f"validation/{kind}": [wandb.Image(images[k], caption=prompt) for prompt, images in rows]
                    for k, kind in enumerate(["image", *kinds])
                },
                step=step,
            )
    width, height = rows[0][1][0].size
    grid = PIL.Image.new("RGB", (width * len(rows[0][1]), height * len(rows)))
    for r, (_, images) in enumerate(rows):
        for c, image in enumerate(images):
            grid.paste(image, (c * width, r * height))
    grid.save(folder / "grid.png")
    if final:
        grid.save(Path(args.output_dir) / VALIDATION_GRID)
        args.validation_summary = {"columns": ["image", *kinds], "prompts": [prompt for prompt, _ in rows]}
    return folder


def truncate_train_log(path: Path, last_step: int) -> None:
    """Keep the lines of the step log `path` up to `last_step` (a resumed run logs the later steps again, so that
    its log reads like the uninterrupted run's); a line cut short by a kill is dropped. Rewritten atomically."""
    if not path.is_file():
        return
    kept = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            step = json.loads(line)["step"]
        except (ValueError, KeyError, TypeError):
            continue
        if step <= last_step:
            kept.append(line + "\n")
    temporary = path.with_name(f".{path.name}.partial")
    temporary.write_text("".join(kept), encoding="utf-8")
    os.replace(temporary, path)


def mean_over_processes(accelerator: Accelerator, logs: dict[str, float]) -> dict[str, float]:
    """Average the logged floats over the processes, so the log shows the loss of the whole batch."""
    if accelerator.num_processes == 1 or not logs:
        return logs
    values = accelerator.reduce(torch.tensor(list(logs.values()), device=accelerator.device), reduction="mean")
    return dict(zip(logs, values.tolist()))


def make_scheduler(args: argparse.Namespace, optimizer: torch.optim.Optimizer, num_processes: int):
    """Table 4's poly-0.9 schedule with milestones, or any diffusers scheduler by name."""
    if args.lr_scheduler == "poly":
        # Milestones are fractions of the run; on a short run two may land on one step: the later value wins.
        steps = {}
        for fraction, value in zip(args.lr_milestones, args.lr_milestone_values):
            steps[max(1, round(fraction * args.max_train_steps))] = value
        return training_utils.get_poly_milestone_scheduler(
            optimizer,
            total_steps=args.max_train_steps,
            milestones=sorted(steps),
            values=[steps[step] for step in sorted(steps)],
            power=args.lr_power,
            num_processes=num_processes,
        )
    from diffusers.optimization import get_scheduler

    return get_scheduler(
        args.lr_scheduler,
        optimizer,
        num_warmup_steps=args.lr_warmup_steps * num_processes,
        num_training_steps=args.max_train_steps * num_processes,
        power=args.lr_power,
    )


def save_outputs(args: argparse.Namespace, models: dict, description: str) -> None:
    """Save the trained models as `save_pretrained` subfolders, a model card, and push to the Hub if asked.

    A model saved under the name "" is written to `output_dir` itself (a whole pipeline).
    """
    for name, model in models.items():
        model.save_pretrained(os.path.join(args.output_dir, name) if name else args.output_dir)
    base_model = getattr(args, "base_model_id", None) or training_utils.hub_model_id(
        args.pretrained_model_name_or_path
    )
    sets = getattr(args, "train_sets", {})
    training_utils.write_model_card(
        args.output_dir,
        template_str=training_utils.TRAINING_CARD_TEMPLATE,
        model_description=description,
        training_summary=training_summary(args, models, base_model),
        base_model=base_model,
        datasets=list(sets) or None,
        overwrite=True,
        title=Path(args.output_dir).name,
    )
    if args.push_to_hub:
        push_outputs(args, models)


def training_summary(args: argparse.Namespace, models: dict, base_model: Optional[str]) -> str:
    """The model card's account of the run: what was trained, on what, how, and the validation grid."""
    script = STAGE_SCRIPTS.get(getattr(args, "stage", None), "a stage script")
    trained = ", ".join(f"`{name}/`" if name else "the whole pipeline" for name in models)
    base = f"`{base_model}`" if base_model else f"a local copy at `{args.pretrained_model_name_or_path}`"
    lines = [
        f"Trained with `{script}` of diffusers-matte from the base model {base}; written: {trained}.",
        "",
        "| data set | given as | training rows |",
        "|---|---|---|",
    ]
    for name, (value, rows) in getattr(args, "train_sets", {}).items():
        lines.append(f"| {name} | `--dataset {value}` | {rows} |")
    many = len(getattr(args, "train_sets", {})) > 1
    schedule = f"`--data_schedule {args.data_schedule}`" if many else "one set, shuffled each epoch"
    augment = (
        "none (`--no_augment`)"
        if args.no_augment
        else "appendix 6.2's for the real sets"
        + (" (P3M-10k / AM-2k flips only, `--no_rssn`)" if args.no_rssn else "")
    )
    lines += [
        "",
        f"- steps: {args.max_train_steps}, batch {args.train_batch_size} per device x "
        f"{args.gradient_accumulation_steps} accumulation, learning rate {args.learning_rate:g} "
        f"({args.lr_scheduler}), resolution {args.resolution}, region-map kernel {args.morphology_kernel_size}, "
        f"seed {args.seed}, mixed precision {args.mixed_precision or 'no'}, EMA {'on' if args.use_ema else 'off'}",
        f"- schedule: {schedule}; augmentation: {augment}",
    ]
    summary = getattr(args, "validation_summary", None)
    if summary and (Path(args.output_dir) / VALIDATION_GRID).is_file():
        lines += [
            "",
            "## Validation",
            "",
            f"Columns: {', '.join(summary['columns'])}. Rows: " + "; ".join(f'"{p}"' for p in summary["prompts"]),
            "",
            f"![validation]({VALIDATION_GRID})",
        ]
    return "\n".join(lines)


# Files of a training output that are not part of the published model.
_NOT_PUBLISHED = ("checkpoint-*", ".incomplete-*", "logs", TRAIN_LOG)


def push_outputs(args: argparse.Namespace, models: dict) -> str:
    """Upload the training output with its code, as `pipe.push_to_hub` does: a whole pipeline (saved under "") in
    the layout of `hub.save_pretrained_with_code`, so `DiffusionPipeline.from_pretrained(repo,
    trust_remote_code=True)` loads it without diffusers-matte; each other model with its module next to its
    weights. Checkpoints and logs stay local. Returns the commit URL."""
    from huggingface_hub import create_repo, upload_folder

    from . import hub

    repo_id = getattr(args, "hub_repo_id", None)
    if repo_id is None:
        name = args.hub_model_id or Path(args.output_dir).name
        repo_id = create_repo(name, exist_ok=True, token=args.hub_token).repo_id
    ignored = shutil.ignore_patterns(*_NOT_PUBLISHED, args.logging_dir)
    with tempfile.TemporaryDirectory() as folder:
        shutil.copytree(args.output_dir, folder, ignore=ignored, dirs_exist_ok=True)
        copied: dict = {}
        for name, model in models.items():
            if not name and hasattr(model, "components"):
                hub.save_pretrained_with_code(model, folder)
            elif name:
                hub.copy_module_with_siblings(type(model), Path(folder) / name, copied)
        return upload_folder(
            repo_id=repo_id,
            folder_path=folder,
            commit_message="End of training",
            token=args.hub_token,
        )
