#!/usr/bin/env python
# Copyright 2026 The diffusers-matte authors. Licensed under the Apache License, Version 2.0.
"""Stage 1 of the paper (section 3.2.1): soft grounding in semantic.

The Stable Diffusion UNet, with its latent head replaced by the 3-class region head, learns to tell the
foreground, background and transparent regions of the matte that a sentence refers to, from the clean image
latent z_I in one step; the CLIP text encoder is frozen and a two-layer text adapter refines its features.
Loss: L_CE, eq. (2).

    accelerate launch training/train_teacher.py \
        --pretrained_model_name_or_path stable-diffusion-v1-5/stable-diffusion-v1-5 \
        --output_dir teacher --dataset synthetic --max_train_steps 20000

The output folder holds `unet/` and `text_adapter/`, which `train_distill.py` loads; with `--use_lora`, `unet/` is
the UNet with the LoRA folded in and `unet_lora/` the adapter alone, in peft's format.
"""

import argparse
import os

import PIL.Image
import torch

from diffusers_matte import training_utils
from diffusers_matte.losses import region_cross_entropy_loss
from diffusers_matte.models.text_adapter import TextAdapter
from diffusers_matte.models.unet_matte import MatteUNet2DConditionModel
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
    add_training_args(parser, stage="teacher")
    parser.add_argument(
        "--head_channels",
        type=int,
        default=None,
        help="width of the region head's ConvBNReLUs",
    )
    parser.add_argument(
        "--use_lora",
        action="store_true",
        help="train LoRA adapters on the UNet (peft) instead of all its weights",
    )
    parser.add_argument("--lora_rank", type=int, default=8)
    parser.add_argument(
        "--prediction_timestep",
        type=int,
        default=0,
        help="timestep of the single-step prediction from the clean latent; the student inherits it",
    )
    args = parser.parse_args(input_args)
    validate_args(args)
    if args.prediction_timestep < 0:
        raise ValueError(f"--prediction_timestep must be 0 or more, got {args.prediction_timestep}.")
    return args


def build_teacher(args: argparse.Namespace) -> MatteUNet2DConditionModel:
    unet = MatteUNet2DConditionModel.from_pretrained(
        args.pretrained_model_name_or_path,
        subfolder="unet",
        revision=args.revision,
        variant=args.variant,
        prediction_head="region",
        head_channels=args.head_channels,
        prediction_timestep=args.prediction_timestep,
    )
    if args.use_lora:
        from peft import LoraConfig

        unet.requires_grad_(False)
        targets = ["to_q", "to_k", "to_v", "to_out.0"]
        unet.add_adapter(LoraConfig(r=args.lora_rank, lora_alpha=args.lora_rank, target_modules=targets))
        unet.conv_out.requires_grad_(True)  # the new head is always trained in full
    if args.gradient_checkpointing:
        unet.enable_gradient_checkpointing()
    return unet


# Background black, foreground white, transparent orange.
REGION_COLOURS = torch.tensor([[0, 0, 0], [255, 255, 255], [255, 128, 0]], dtype=torch.uint8)


def region_map_image(classes: torch.Tensor) -> PIL.Image.Image:
    """A `(h, w)` map of region classes as an RGB image."""
    return PIL.Image.fromarray(REGION_COLOURS[classes.cpu().long()].numpy(), mode="RGB")


def main(args: argparse.Namespace) -> None:
    accelerator = make_accelerator(args)
    encoders = FrozenEncoders.from_pretrained(args, accelerator)
    unet = build_teacher(args)
    encoders.check_unet(unet)
    text_adapter = TextAdapter(embed_dim=encoders.text_encoder.config.hidden_size)
    timestep = unet.config.prediction_timestep

    def step(batch, models, backward):
        latents = encoders.encode_image(batch["pixel_values"])
        text = models["text_adapter"](encoders.encode_text(batch["text"]))
        logits = models["unet"](latents, timestep, text).sample
        loss = region_cross_entropy_loss(logits, batch["region_map"].to(logits.device))  # eq. (2)
        backward(loss)
        return {"loss": loss.item()}

    def validate(models, pixels, prompt):  # the region map as colours
        text = models["text_adapter"](encoders.encode_text([prompt]))
        logits = models["unet"](encoders.encode_image(pixels), timestep, text).sample.float()
        return {"region_map": region_map_image(logits.argmax(dim=1)[0])}

    dataloader = make_dataloader(args, encoders.latent_factor)
    trained = train(
        args,
        accelerator,
        {"unet": unet, "text_adapter": text_adapter},
        dataloader,
        step,
        validate,
    )
    if accelerator.is_main_process:
        if args.use_lora:  # the adapter in peft's format (the region head is trained in full: it is in unet/)
            training_utils.save_peft_adapter(trained["unet"], os.path.join(args.output_dir, "unet_lora"))
            trained["unet"].fuse_lora()  # fold LoRA into the weights: the next stage loads a plain teacher
            trained["unet"].unload_lora()
        save_outputs(
            args,
            trained,
            "Teacher of stage 1 (soft grounding in semantic): region head + text adapter.",
        )
    accelerator.end_training()


if __name__ == "__main__":
    main(parse_args())
