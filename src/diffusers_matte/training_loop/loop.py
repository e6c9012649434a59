# Copyright 2026 The diffusers-matte authors. Licensed under the Apache License, Version 2.0.
"""The loop: accelerate, the frozen encoders, gradient accumulation, clipping, the appendix Table 4 schedule,
EMA, checkpoints with `--resume_from_checkpoint latest`, logging, validation."""

import argparse
import hashlib
import json
import math
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch
from accelerate import Accelerator
from accelerate.logging import get_logger
from accelerate.utils import DataLoaderConfiguration, ProjectConfiguration, set_seed
from torch import nn
from tqdm.auto import tqdm

from .. import training_utils
from ..pipelines.soft_grounding.pipeline_soft_grounding import (
    check_vae_matches_unet,
    encode_latents,
    load_vae,
    tokenize,
    vae_scale_factor,
)
from .data import ProcessScheduledBatchSampler
from .ema import make_ema_models, register_ema_hooks, trained_parameters
from .options import TRAIN_LOG, VAE_OPTION, check_output_dir, check_tracker, prepare_hub_repo, run_artifacts
from .validation import log_step

logger = get_logger(__name__)


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


def stage_vae(args: argparse.Namespace, **kwargs) -> Optional[nn.Module]:
    """The VAE of `--vae_model_name_or_path` (`load_vae`: an `AutoencoderKL` or `AutoencoderTiny`), or None when
    the option is not given; `kwargs` go to `from_pretrained`."""
    path = getattr(args, "vae_model_name_or_path", None)
    return None if path is None else load_vae(path, option=VAE_OPTION, **kwargs)


def vae_description(args: argparse.Namespace) -> str:
    """Which VAE a stage reads its latents from, as its errors name it."""
    path = getattr(args, "vae_model_name_or_path", None)
    return f"the VAE of {VAE_OPTION} {path!r}" if path else "the VAE of --pretrained_model_name_or_path"


@dataclass
class FrozenEncoders:
    """The frozen VAE encoder and CLIP text encoder that feed every stage."""

    vae: nn.Module
    text_encoder: nn.Module
    tokenizer: object
    latent_cache: dict | None = None  # digest of an image's pixels -> its z_I, when enabled
    vae_name: str = "the VAE"  # for the errors

    @classmethod
    def from_pretrained(cls, args: argparse.Namespace, accelerator: Accelerator) -> "FrozenEncoders":
        """The base model's text encoder and tokenizer, and its VAE or that of `--vae_model_name_or_path`."""
        from diffusers import AutoencoderKL
        from transformers import CLIPTextModel, CLIPTokenizer

        path, kw = args.pretrained_model_name_or_path, dict(revision=args.revision)
        vae = stage_vae(args)
        if vae is None:
            vae = AutoencoderKL.from_pretrained(path, subfolder="vae", variant=args.variant, **kw)
        encoders = cls(
            vae=vae,
            text_encoder=CLIPTextModel.from_pretrained(path, subfolder="text_encoder", **kw),
            tokenizer=CLIPTokenizer.from_pretrained(path, subfolder="tokenizer", **kw),
            latent_cache={} if getattr(args, "cache_latents", False) else None,
            vae_name=vae_description(args),
        )
        for model in (encoders.vae, encoders.text_encoder):
            model.requires_grad_(False).eval().to(accelerator.device, weight_dtype(accelerator))
        return encoders

    @property
    def latent_factor(self) -> int:
        return vae_scale_factor(self.vae)

    def check_unet(self, unet: nn.Module) -> None:
        """Refuse a UNet that cannot read this VAE's latents (`check_vae_matches_unet`)."""
        check_vae_matches_unet(self.vae, unet, self.vae_name)

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
                ema.step(trained_parameters(models[name]))
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
            if validate_fn is not None and global_step < args.max_train_steps:
                log_step(args, accelerator, models, emas, validate_fn, global_step)
            if global_step >= args.max_train_steps:
                break
        epoch += 1
    accelerator.wait_for_everyone()
    for name, ema in emas.items():  # the averaged weights are the stage's output
        ema.copy_to(trained_parameters(models[name]))
    if validate_fn is not None:
        log_step(args, accelerator, models, {}, validate_fn, global_step, final=True)
    return {name: accelerator.unwrap_model(model) for name, model in wrapped.items()}


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
