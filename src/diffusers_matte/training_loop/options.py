# Copyright 2026 The diffusers-matte authors. Licensed under the Apache License, Version 2.0.
"""The training scripts' shared command line: the options every stage takes, their checks, and what is
checked before anything loads (trackers, the Hub, the output folder)."""

import argparse
import importlib.util
from pathlib import Path
from typing import Optional

from .. import training_utils
from ..data.targets import MORPHOLOGY_KERNEL_SIZE
from ..evaluation.protocols import PROTOCOLS

TRAIN_LOG = "train_log.jsonl"
# The option that makes a stage train on the latents of another VAE than its base model's (the fast mode's).
VAE_OPTION = "--vae_model_name_or_path"


STAGE_SCRIPTS = {
    "teacher": "training/train_teacher.py",
    "distill": "training/train_distill.py",
    "matting_decoder": "training/train_matting_decoder.py",
    "refiner": "training/train_refiner.py",
    "tiny_encoder": "training/train_tiny_encoder.py",
}


# The stages whose output is a pipeline: their prediction is an alpha that `--eval_protocol` can score.
EVALUATED_STAGES = ("matting_decoder", "refiner")


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
        VAE_OPTION,
        default=None,
        help="train on the latents of this VAE instead of --pretrained_model_name_or_path's vae/: a folder or Hub id "
        "holding one in vae/ (e.g. training/train_tiny_encoder.py's output, for the fast mode) or a VAE folder, an "
        "AutoencoderKL or AutoencoderTiny as its config says; a pipeline the stage writes has it as its vae",
    )
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
    add(
        "--synthetic_no_target_share",
        type=float,
        default=0.0,
        help="share of generated synthetic images that also get a row whose texts name nothing in them (all-zero "
        "alpha; --dataset synthetic only)",
    )
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
    if stage in EVALUATED_STAGES:
        add_eval_args(parser)
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


def add_eval_args(parser: argparse.ArgumentParser) -> None:
    """`--eval_protocol` and its options, for the stages whose output is a pipeline (`EVALUATED_STAGES`)."""
    add = parser.add_argument
    add(
        "--eval_protocol",
        choices=sorted(PROTOCOLS),
        default=None,
        help="score the stage's alpha on this held-out split every --eval_steps (and at the end) with the "
        "evaluation harness: SAD, MSE, GRAD and CONN go to the trackers as eval/<metric>, the harness's files under "
        "<output_dir>/evaluation/step-<N>/",
    )
    add(
        "--eval_data_dir",
        default=None,
        help="your copy of the --eval_protocol set (synthetic: a save_to_disk folder, or none to generate its test "
        "split from --seed, --synthetic_num_test and --synthetic_image_size)",
    )
    add(
        "--eval_captions_file",
        default=None,
        help="caption file of the am2k and p3m_500_* protocols (training/caption_dataset.py)",
    )
    add("--eval_steps", type=int, default=500, help="score --eval_protocol every this many steps (and at the end)")
    add(
        "--eval_max_samples",
        type=int,
        default=None,
        help="score only the first this many (image, text) pairs of the split (default: all)",
    )
    add(
        "--synthetic_num_test",
        type=int,
        default=200,
        help="images of the generated synthetic test split (--eval_protocol synthetic without --eval_data_dir)",
    )


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
    check_positive(
        args,
        "resolution",
        "train_batch_size",
        "max_train_steps",
        "gradient_accumulation_steps",
        "checkpointing_steps",
        "morphology_kernel_size",
        "validation_steps",
    )
    for path in args.validation_image or []:
        if not Path(path).is_file():
            raise FileNotFoundError(f"--validation_image {path!r} is not a file.")
    validation_pairs(args)
    check_eval_args(args)


def check_positive(args: argparse.Namespace, *names: str, optional: bool = False) -> None:
    """Each `--<name>` is a positive integer (with `optional`, or None: not given)."""
    for name in names:
        value = getattr(args, name)
        if not (optional and value is None) and value < 1:
            raise ValueError(f"--{name} must be a positive integer, got {value}.")


def check_eval_args(args: argparse.Namespace) -> None:
    """`--eval_protocol` and its options, checked before anything loads: the folder and caption file the protocol
    reads, positive counts."""
    if getattr(args, "eval_protocol", None) is None:
        return
    check_positive(args, "eval_steps", "eval_max_samples", "synthetic_num_test", optional=True)
    protocol = PROTOCOLS[args.eval_protocol]
    if args.eval_data_dir is None and protocol.name != "synthetic":
        raise ValueError(f"--eval_protocol {protocol.name} needs --eval_data_dir, the folder of your copy of the set.")
    if args.eval_data_dir is not None and not Path(args.eval_data_dir).is_dir():
        raise FileNotFoundError(f"--eval_data_dir {args.eval_data_dir!r} is not a folder.")
    if protocol.uses_captions != (args.eval_captions_file is not None):
        captioned = ", ".join(name for name, p in PROTOCOLS.items() if p.uses_captions)
        raise ValueError(
            f"--eval_captions_file is for the caption-based protocols ({captioned}): --eval_protocol "
            f"{protocol.name} {'needs one' if protocol.uses_captions else 'takes none'}."
        )
    if args.eval_captions_file is not None and not Path(args.eval_captions_file).is_file():
        raise FileNotFoundError(f"--eval_captions_file {args.eval_captions_file!r} is not a file.")


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
