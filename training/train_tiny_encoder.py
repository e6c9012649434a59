#!/usr/bin/env python
# Copyright 2026 The diffusers-matte authors. Licensed under the Apache License, Version 2.0.
"""Fast mode: distil diffusers' `AutoencoderTiny` encoder into the latent space of a pipeline's VAE encoder.

The SD VAE encoder is most of the pipeline's time on CPU. A tiny encoder (TAESD's architecture, about 1.2M
parameters) learns to give, for every training image, the latent `z_I` the frozen VAE gives it (the posterior
mode times `vae.config.scaling_factor`, what the UNet reads), by regression: the mean squared error between the
two latents, as TAESD's encoder was trained. `AutoencoderTiny` has no posterior and its latents are already
scaled (`scaling_factor` 1.0), so its output is compared with `z_I` as it is; only its encoder is trained (the
pipeline never decodes).

    accelerate launch training/train_tiny_encoder.py \
        --pretrained_model_name_or_path soft-grounding-matting \
        --output_dir tiny-encoder --dataset refmatte=/data/RefMatte --max_train_steps 10000

`--pretrained_model_name_or_path` is the pipeline (or the Stable Diffusion base, whose VAE it keeps frozen)
whose `vae/` is the teacher. `--tiny_model_name_or_path` starts from a trained `AutoencoderTiny` (e.g.
madebyollin/taesd, already close to SD's latents), `--tiny_config` from random weights of another size. The
output folder holds `vae/`, the `AutoencoderTiny` a pipeline takes as its `vae` for the fast mode. The defaults
(learning rate 2e-4, 10k steps, batch 16, poly decay) are those of the refiner stage, another small
convolutional network trained alone; the paper has no fast mode.
"""

import argparse
import json
import types

import PIL.Image
import torch
import torch.nn.functional as F
from diffusers import AutoencoderTiny

from diffusers_matte.training_loop import (
    FrozenEncoders,
    add_training_args,
    make_accelerator,
    make_dataloader,
    make_parser,
    save_outputs,
    train,
    validate_args,
)


def parse_args(input_args=None) -> argparse.Namespace:
    parser = make_parser(__doc__.split("\n\n")[0])
    add_training_args(parser, stage="refiner")
    parser.set_defaults(stage="tiny_encoder")
    source = parser.add_mutually_exclusive_group()
    source.add_argument(
        "--tiny_model_name_or_path",
        default=None,
        help="an AutoencoderTiny to start from: a folder or Hub id holding its config.json, e.g. madebyollin/taesd "
        "(default: random weights)",
    )
    source.add_argument(
        "--tiny_config",
        default=None,
        help="JSON file of AutoencoderTiny arguments for a randomly initialised encoder (default: diffusers' "
        "defaults, TAESD's architecture)",
    )
    args = parser.parse_args(input_args)
    if args.gradient_checkpointing:
        # diffusers' EncoderTiny skips its [-1, 1] -> [0, 1] input rescaling when checkpointing.
        parser.error(
            "--gradient_checkpointing is not supported: AutoencoderTiny's encoder reads other inputs with it."
        )
    if args.vae_model_name_or_path is not None:
        parser.error(
            "--vae_model_name_or_path: the tiny encoder learns the latents of the vae/ of "
            "--pretrained_model_name_or_path; give the folder or Hub id holding that VAE there."
        )
    if getattr(args, "eval_protocol", None):
        parser.error("--eval_protocol scores alpha mattes; the tiny encoder predicts latents (see its validation).")
    validate_args(args)
    return args


def build_tiny_encoder(args: argparse.Namespace, vae) -> AutoencoderTiny:
    """The student: a pretrained `AutoencoderTiny` or a new one, checked against the teacher's latent grid."""
    if args.tiny_model_name_or_path:
        tiny = AutoencoderTiny.from_pretrained(args.tiny_model_name_or_path, revision=args.revision)
    else:
        kwargs = {}
        if args.tiny_config:
            with open(args.tiny_config) as f:
                kwargs = json.load(f)
        tiny = AutoencoderTiny(**kwargs)
    factor = 2 ** (len(tiny.config.encoder_block_out_channels) - 1)
    vae_factor = 2 ** (len(vae.config.block_out_channels) - 1)
    if (tiny.config.latent_channels, factor) != (vae.config.latent_channels, vae_factor):
        raise ValueError(
            f"The tiny encoder gives {tiny.config.latent_channels} latent channels at 1/{factor} of the image, the "
            f"VAE {vae.config.latent_channels} at 1/{vae_factor}: give it {vae.config.latent_channels} "
            f"`latent_channels` and {int(vae_factor).bit_length()} `encoder_block_out_channels` / "
            "`num_encoder_blocks` entries."
        )
    tiny.decoder.requires_grad_(False)  # only the encoder is distilled: the pipeline never decodes
    return tiny


def tiny_latents(tiny: AutoencoderTiny, pixel_values: torch.Tensor) -> torch.Tensor:
    """The student's `z_I`, as the pipeline reads an `AutoencoderTiny` (its latents times its scaling factor)."""
    return tiny.encode(pixel_values).latents * tiny.config.scaling_factor


def latents_to_pil(tiny: AutoencoderTiny, latents: torch.Tensor) -> PIL.Image.Image:
    """The first three channels of a `(C, h, w)` latent as colours, on TAESD's fixed scale."""
    array = (tiny.scale_latents(latents.float())[:3].permute(1, 2, 0).cpu().numpy() * 255).round()
    return PIL.Image.fromarray(array.astype("uint8"))


def main(args: argparse.Namespace) -> None:
    accelerator = make_accelerator(args)
    encoders = FrozenEncoders.from_pretrained(args, accelerator)
    tiny = build_tiny_encoder(args, encoders.vae)
    # The encoder runs as the model's forward pass: DDP synchronises the gradients of forward passes only, and
    # AutoencoderTiny's own forward would also decode.
    tiny.forward = types.MethodType(tiny_latents, tiny)

    def step(batch, models, backward):
        pixel_values = batch["pixel_values"].to(accelerator.device)
        target = encoders.encode_image(pixel_values)  # z_I of the frozen VAE, in fp32
        loss = F.mse_loss(models["vae"](pixel_values).float(), target, reduction="mean")
        backward(loss)
        return {"loss": loss.item()}

    def validate(models, pixels, prompt):  # the two latents side by side; the prompt plays no part
        pixels = pixels.to(accelerator.device)
        return {
            "vae_latents": latents_to_pil(tiny, encoders.encode_image(pixels)[0]),
            "tiny_latents": latents_to_pil(tiny, models["vae"](pixels)[0]),
        }

    dataloader = make_dataloader(args, encoders.latent_factor)
    trained = train(args, accelerator, {"vae": tiny}, dataloader, step, validate)
    if accelerator.is_main_process:
        save_outputs(
            args,
            {"vae": trained["vae"].eval()},
            "Fast-mode image encoder: an AutoencoderTiny whose encoder is distilled into the latent space of the "
            "pipeline's VAE encoder (`vae/`; pass it as the pipeline's `vae`).",
        )
    accelerator.end_training()


if __name__ == "__main__":
    main(parse_args())
