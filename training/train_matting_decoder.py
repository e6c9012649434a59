#!/usr/bin/env python
# Copyright 2026 The diffusers-matte authors. Licensed under the Apache License, Version 2.0.
"""Stage 3 of the paper (section 3.4): from soft grounding to the alpha matte.

The stage-2 student is frozen; the matting decoder learns to turn the image, the up-sampled coarse alpha,
sigmoid(R) and the student's output features into the full-resolution alpha, with the L1 + Laplacian loss
of Li et al. (2022). The output folder is a complete `SoftGroundingMattingPipeline`.

    accelerate launch training/train_matting_decoder.py \
        --pretrained_model_name_or_path stable-diffusion-v1-5/stable-diffusion-v1-5 \
        --student_model_name_or_path student --output_dir soft-grounding-matting
"""

import argparse

import torch

from diffusers_matte.losses import matting_decoder_loss
from diffusers_matte.models.matting_decoder import MattingDecoder
from diffusers_matte.models.text_adapter import TextAdapter
from diffusers_matte.models.unet_matte import MatteUNet2DConditionModel
from diffusers_matte.pipelines.soft_grounding.image_processor import alpha_to_pil
from diffusers_matte.pipelines.soft_grounding.pipeline_soft_grounding import (
    SoftGroundingMattingPipeline,
)
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
    add_training_args(parser, stage="matting_decoder")
    parser.add_argument(
        "--student_model_name_or_path",
        required=True,
        help="stage-2 output (unet/, text_adapter/)",
    )
    parser.add_argument(
        "--decoder_config",
        default=None,
        help="JSON file of MattingDecoder arguments (default: the paper-sized decoder)",
    )
    parser.add_argument("--laplacian_weight", type=float, default=1.0)
    args = parser.parse_args(input_args)
    validate_args(args)
    return args


def main(args: argparse.Namespace) -> None:
    accelerator = make_accelerator(args)
    encoders = FrozenEncoders.from_pretrained(args, accelerator)
    unet = MatteUNet2DConditionModel.from_pretrained(args.student_model_name_or_path, subfolder="unet")
    text_adapter = TextAdapter.from_pretrained(args.student_model_name_or_path, subfolder="text_adapter")
    for model in (unet, text_adapter):
        model.requires_grad_(False).eval().to(accelerator.device)
    decoder_kwargs = {}
    if args.decoder_config:
        import json

        with open(args.decoder_config) as f:
            decoder_kwargs = json.load(f)
    decoder = MattingDecoder(feature_channels=unet.config.block_out_channels[0], **decoder_kwargs)

    def predict(decoder, pixel_values, texts):
        with torch.no_grad():
            text = text_adapter(encoders.encode_text(texts))
            prediction = unet.predict(encoders.encode_image(pixel_values), text, output_features=True)
        return decoder(
            pixel_values,
            prediction.coarse_alpha,
            prediction.transparency_logits,
            prediction.features,
            return_dict=False,  # accelerate's mixed-precision wrapper cannot rebuild the output dataclass
        )[0]

    def step(batch, prepared, backward):
        pixel_values = batch["pixel_values"].to(accelerator.device)
        alpha = predict(prepared["matting_decoder"], pixel_values, batch["text"])
        loss, parts = matting_decoder_loss(alpha, batch["alpha"].to(alpha.device), args.laplacian_weight)
        backward(loss)
        return {
            "loss": loss.item(),
            **{f"loss_{k}": v.item() for k, v in parts.items()},
        }

    def validate(models, pixels, prompt):
        alpha = predict(models["matting_decoder"], pixels.to(accelerator.device), [prompt])
        return {"alpha": alpha_to_pil(alpha[0].float().clamp(0, 1))}

    dataloader = make_dataloader(args, encoders.latent_factor)
    trained = train(args, accelerator, {"matting_decoder": decoder}, dataloader, step, validate)
    if accelerator.is_main_process:
        pipe = SoftGroundingMattingPipeline(
            vae=encoders.vae.float(),
            text_encoder=encoders.text_encoder.float(),
            tokenizer=encoders.tokenizer,
            text_adapter=text_adapter,
            unet=unet,
            matting_decoder=trained["matting_decoder"].eval(),
            default_processing_resolution=args.resolution,
        )
        save_outputs(
            args,
            {"": pipe},
            "SoftGroundingMattingPipeline: text-grounded alpha matting in one UNet step.",
        )
    accelerator.end_training()


if __name__ == "__main__":
    main(parse_args())
