# Copyright 2026 The diffusers-matte authors. Licensed under the Apache License, Version 2.0.
"""What a stage leaves behind: the trained models, the model card, and the upload to the Hub."""

import argparse
import os
import shutil
import tempfile
from pathlib import Path
from typing import Optional

from .. import training_utils
from .options import STAGE_SCRIPTS, TRAIN_LOG, VAE_OPTION
from .validation import VALIDATION_GRID


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
    if getattr(args, "vae_model_name_or_path", None):
        lines.append(vae_summary(args, models))
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
    scores = getattr(args, "evaluation_summary", None)
    if scores:  # --eval_protocol: the metrics of the last step, on the stage's validation alpha
        lines += [
            "",
            "## Evaluation during training",
            "",
            f"`{scores['protocol']}` protocol, {scores['samples']} samples, step {scores['step']} (the stage's "
            "8-bit validation alpha at the training resolution; `training/evaluate.py` scores the saved pipeline):",
            "",
            "| SAD | MSE | GRAD | CONN |",
            "|---|---|---|---|",
            f"| {scores['sad']:.3f} | {scores['mse']:.4f} | {scores['grad']:.3f} | {scores['conn']:.3f} |",
        ]
    return "\n".join(lines)


def vae_summary(args: argparse.Namespace, models: dict) -> str:
    """The model card's line on `--vae_model_name_or_path`: whose latents the stage trained on."""
    line = f"- latents: of the VAE at `{args.vae_model_name_or_path}` (`{VAE_OPTION}`), not of the base model's `vae/`"
    pipe = models.get("")
    if pipe is not None and hasattr(pipe, "vae"):
        line += f"; the pipeline holds it as its `vae`, a `{type(pipe.vae).__name__}`"
    return line


# Files of a training output that are not part of the published model.
_NOT_PUBLISHED = ("checkpoint-*", ".incomplete-*", "logs", TRAIN_LOG)


def push_outputs(args: argparse.Namespace, models: dict) -> str:
    """Upload the training output with its code, as `pipe.push_to_hub` does: a whole pipeline (saved under "") in
    the layout of `hub.save_pretrained_with_code`, so `DiffusionPipeline.from_pretrained(repo,
    trust_remote_code=True)` loads it without diffusers-matte; each other model with its module next to its
    weights. Checkpoints and logs stay local. Returns the commit URL."""
    from huggingface_hub import create_repo, upload_folder

    from .. import hub

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
