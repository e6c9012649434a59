#!/usr/bin/env python
# Copyright 2026 The diffusers-matte authors. Licensed under the Apache License, Version 2.0.
"""Stage 3 of the paper (section 3.4): from soft grounding to the alpha matte.

The stage-2 student is frozen; the matting decoder learns to turn the image, the up-sampled coarse alpha,
sigmoid(R) and the student's output features into the full-resolution alpha, with the L1 + Laplacian loss
of Li et al. (2022). The output folder is a complete `SoftGroundingMattingPipeline`.

    accelerate launch training/train_matting_decoder.py \
        --pretrained_model_name_or_path stable-diffusion-v1-5/stable-diffusion-v1-5 \
        --student_model_name_or_path student --output_dir soft-grounding-matting

Fast mode: with `--vae_model_name_or_path tiny-encoder` (`training/train_tiny_encoder.py`'s output) the stage reads
the tiny encoder's latents and the pipeline it writes holds that `AutoencoderTiny` as its `vae`. To fine-tune a
finished pipeline on them, start the decoder from it (`--decoder_model_name_or_path`) and train the student too
(`--train_unet`: end to end through the decoder, with its own L_alpha^lr + L_R of eq. (9) at the paper's weights):

    accelerate launch training/train_matting_decoder.py \
        --pretrained_model_name_or_path stable-diffusion-v1-5/stable-diffusion-v1-5 \
        --vae_model_name_or_path tiny-encoder --student_model_name_or_path soft-grounding-matting \
        --decoder_model_name_or_path soft-grounding-matting --train_unet --max_train_steps 2000 \
        --output_dir soft-grounding-matting-fast
"""

import argparse
import json
import os

import torch

from diffusers_matte.losses import DistillationLossWeights, matting_decoder_loss, soft_grounding_distillation_loss
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

DECODER = "matting_decoder"  # the decoder's subfolder in a pipeline folder


def parse_args(input_args=None) -> argparse.Namespace:
    parser = make_parser(__doc__.split("\n\n")[0])
    add_training_args(parser, stage="matting_decoder")
    parser.add_argument(
        "--student_model_name_or_path",
        required=True,
        help="stage-2 output (unet/, text_adapter/)",
    )
    decoder = parser.add_mutually_exclusive_group()
    decoder.add_argument(
        "--decoder_config",
        default=None,
        help="JSON file of MattingDecoder arguments (default: the paper-sized decoder)",
    )
    decoder.add_argument(
        "--decoder_model_name_or_path",
        default=None,
        help="start the decoder from the matting_decoder/ of this folder or Hub id (a stage-3 pipeline) instead of "
        "random weights, to fine-tune it",
    )
    parser.add_argument(
        "--train_unet",
        action="store_true",
        help="also fine-tune the student UNet, end to end through the decoder, with its own L_alpha^lr + L_R "
        "(eq. 9's weights) on its coarse alpha and R",
    )
    parser.add_argument("--laplacian_weight", type=float, default=1.0)
    args = parser.parse_args(input_args)
    validate_args(args)
    check_decoder_folder(args.decoder_model_name_or_path)
    return args


def check_decoder_folder(path: str | None) -> None:
    """Refuse a local `--decoder_model_name_or_path` folder without `matting_decoder/` before anything loads."""
    if path is not None and os.path.isdir(path) and not os.path.isfile(os.path.join(path, DECODER, "config.json")):
        raise ValueError(
            f"--decoder_model_name_or_path {path!r} has no {DECODER}/config.json: expected a stage-3 pipeline "
            "folder (this script's output) holding the decoder to start from."
        )


def build_decoder(args: argparse.Namespace, feature_channels: int) -> MattingDecoder:
    """A new decoder for the student's `feature_channels` (`--decoder_config`), or the one to fine-tune."""
    if args.decoder_model_name_or_path is None:
        kwargs = {}
        if args.decoder_config:
            with open(args.decoder_config) as f:
                kwargs = json.load(f)
        return MattingDecoder(feature_channels=feature_channels, **kwargs)
    decoder = MattingDecoder.from_pretrained(args.decoder_model_name_or_path, subfolder=DECODER)
    if decoder.config.feature_channels != feature_channels:
        raise ValueError(
            f"--decoder_model_name_or_path {args.decoder_model_name_or_path!r}: its decoder reads "
            f"{decoder.config.feature_channels} feature channels, but the student of --student_model_name_or_path "
            f"gives {feature_channels}: expected the decoder of a pipeline with this student."
        )
    return decoder


def student_loss(prediction, batch: dict) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The student's own terms of eq. (9), L_alpha^lr + L_R at the paper's weights (no teacher here)."""
    weights = DistillationLossWeights(stm=0.0, ctm=0.0, sg=0.0)
    coarse = prediction.coarse_alpha
    loss, parts = soft_grounding_distillation_loss(
        coarse,
        prediction.transparency_logits,
        batch["alpha"].to(coarse.device),
        batch["known_mask"].to(coarse.device),
        weights=weights,
    )
    return loss, {name: parts[name] for name in ("alpha_lr", "r")}


def main(args: argparse.Namespace) -> None:
    accelerator = make_accelerator(args)
    encoders = FrozenEncoders.from_pretrained(args, accelerator)
    unet = MatteUNet2DConditionModel.from_pretrained(args.student_model_name_or_path, subfolder="unet")
    encoders.check_unet(unet)
    text_adapter = TextAdapter.from_pretrained(args.student_model_name_or_path, subfolder="text_adapter")
    for model in (unet, text_adapter):
        model.requires_grad_(False).eval().to(accelerator.device)
    models = {"matting_decoder": build_decoder(args, unet.config.block_out_channels[0])}
    if args.train_unet:
        models["unet"] = unet.requires_grad_(True)
        if args.gradient_checkpointing:
            unet.enable_gradient_checkpointing()

    def predict(models, pixel_values, texts):
        """The decoder's alpha and the student's prediction (gradients reach the student when it is trained)."""
        with torch.no_grad():
            text = text_adapter(encoders.encode_text(texts))
            latents = encoders.encode_image(pixel_values)
        student = models.get("unet", unet)
        with torch.set_grad_enabled(torch.is_grad_enabled() and "unet" in models):
            prediction = accelerator.unwrap_model(student).predict(latents, text, output_features=True, module=student)
        alpha = models["matting_decoder"](
            pixel_values,
            prediction.coarse_alpha,
            prediction.transparency_logits,
            prediction.features,
            return_dict=False,  # accelerate's mixed-precision wrapper cannot rebuild the output dataclass
        )[0]
        return alpha, prediction

    def step(batch, prepared, backward):
        pixel_values = batch["pixel_values"].to(accelerator.device)
        alpha, prediction = predict(prepared, pixel_values, batch["text"])
        loss, parts = matting_decoder_loss(alpha, batch["alpha"].to(alpha.device), args.laplacian_weight)
        if args.train_unet:
            own_loss, own_parts = student_loss(prediction, batch)
            loss, parts = loss + own_loss, {**parts, **own_parts}
        backward(loss)
        return {
            "loss": loss.item(),
            **{f"loss_{k}": v.item() for k, v in parts.items()},
        }

    def validate(models, pixels, prompt):
        alpha, _ = predict(models, pixels.to(accelerator.device), [prompt])
        return {"alpha": alpha_to_pil(alpha[0].float().clamp(0, 1))}

    dataloader = make_dataloader(args, encoders.latent_factor)
    trained = train(args, accelerator, models, dataloader, step, validate)
    if accelerator.is_main_process:
        pipe = SoftGroundingMattingPipeline(
            vae=encoders.vae.float(),
            text_encoder=encoders.text_encoder.float(),
            tokenizer=encoders.tokenizer,
            text_adapter=text_adapter,
            unet=trained.get("unet", unet).eval(),
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
