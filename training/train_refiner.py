#!/usr/bin/env python
# Copyright 2026 The diffusers-matte authors. Licensed under the Apache License, Version 2.0.
"""Stage 4 of the paper (section 3.4 "Extend to High-resolution Inference", appendix 6.3): the sparse up-sampler.

The stage-3 pipeline is frozen; it predicts the alpha at the low `--processing_resolution` exactly as at inference
(resize, VAE, one UNet step, matting decoder). The `SparseMatteRefiner` learns to lift that alpha, with the
decoder's context feature, to the ground truth at the higher training `--resolution`, with the matting decoder's
L1 + Laplacian loss (appendix 6.3). The output folder is the stage-3 pipeline with the trained `refiner`.
All frozen models come from `--pipeline_model_name_or_path`; `--pretrained_model_name_or_path`, taken by every
stage, only names the Stable Diffusion base in the model card. `--vae_model_name_or_path` puts another VAE (the fast
mode's `AutoencoderTiny`) in the pipeline's place, for training and in the output.

    accelerate launch training/train_refiner.py \
        --pretrained_model_name_or_path stable-diffusion-v1-5/stable-diffusion-v1-5 \
        --pipeline_model_name_or_path soft-grounding-matting --resolution 1024 --processing_resolution 512 \
        --output_dir soft-grounding-matting-hr
"""

import argparse
import json
import os

import torch

from diffusers_matte.losses import matting_decoder_loss
from diffusers_matte.models.sparse_refiner import (
    SPARSE_REFINER_BACKENDS,
    SparseMatteRefiner,
)
from diffusers_matte.pipelines.soft_grounding.image_processor import alpha_to_pil
from diffusers_matte.pipelines.soft_grounding.pipeline_soft_grounding import (
    SoftGroundingMattingPipeline,
    check_vae_matches_unet,
)
from diffusers_matte.training_loop import (
    add_training_args,
    make_accelerator,
    make_dataloader,
    make_parser,
    save_outputs,
    stage_vae,
    train,
    vae_description,
    validate_args,
    weight_dtype,
)


def parse_args(input_args=None) -> argparse.Namespace:
    parser = make_parser(__doc__.split("\n\n")[0])
    add_training_args(parser, stage="refiner")
    # --resolution is the refiner's target size; the frozen pipeline runs at --processing_resolution.
    parser.set_defaults(resolution=1024)
    parser.add_argument(
        "--pipeline_model_name_or_path",
        required=True,
        help="stage-3 output: a complete SoftGroundingMattingPipeline folder (all of it stays frozen)",
    )
    parser.add_argument(
        "--processing_resolution",
        type=int,
        default=None,
        help="size the frozen pipeline predicts at (default: the pipeline's default_processing_resolution)",
    )
    parser.add_argument(
        "--refiner_config",
        default=None,
        help="JSON file of SparseMatteRefiner arguments (default: the paper's two groups)",
    )
    parser.add_argument(
        "--refiner_backend",
        choices=SPARSE_REFINER_BACKENDS,
        default="auto",
        help="sparse convolution path; 'auto' trains with spconv on CUDA when installed, else pure PyTorch",
    )
    parser.add_argument("--laplacian_weight", type=float, default=1.0)
    args = parser.parse_args(input_args)
    validate_args(args)
    if args.processing_resolution is not None and not (0 < args.processing_resolution <= args.resolution):
        raise ValueError(
            f"--processing_resolution must be in [1, --resolution={args.resolution}], got "
            f"{args.processing_resolution}."
        )
    if os.path.abspath(args.output_dir) == os.path.abspath(args.pipeline_model_name_or_path):
        raise ValueError(
            "--output_dir must differ from --pipeline_model_name_or_path: the stage-3 pipeline is not overwritten."
        )
    return args


@torch.no_grad()
def predict_low_resolution(
    pipe: SoftGroundingMattingPipeline,
    pixel_values: torch.Tensor,
    texts: list[str],
    processing_resolution: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The frozen pipeline's alpha and decoder context at `processing_resolution`, unpadded, as `pipe.__call__`
    hands them to `pipe.refine`. `pixel_values` are in [-1, 1] at the training resolution.
    """
    pixels, (pad_h, pad_w), _ = pipe.image_processor.preprocess((pixel_values + 1.0) / 2.0, processing_resolution)
    prediction = pipe.predict_alpha(pixels, pipe.encode_image(pixels), pipe.encode_prompt(texts))
    height, width = pixels.shape[-2] - pad_h, pixels.shape[-1] - pad_w
    return prediction.alpha[..., :height, :width].float(), prediction.context[..., :height, :width].float()


def load_pipeline(args: argparse.Namespace, **kwargs) -> SoftGroundingMattingPipeline:
    """The stage-3 pipeline (`kwargs` for `from_pretrained`), with the VAE of `--vae_model_name_or_path` in place of
    its own when given."""
    vae = stage_vae(args, torch_dtype=kwargs.get("torch_dtype"))
    if vae is None:
        return SoftGroundingMattingPipeline.from_pretrained(args.pipeline_model_name_or_path, **kwargs)
    pipe = SoftGroundingMattingPipeline.from_pretrained(args.pipeline_model_name_or_path, vae=vae, **kwargs)
    check_vae_matches_unet(pipe.vae, pipe.unet, vae_description(args))
    return pipe


def main(args: argparse.Namespace) -> None:
    accelerator = make_accelerator(args)
    # Frozen: under mixed precision it runs in half precision.
    pipe = load_pipeline(args, torch_dtype=weight_dtype(accelerator))
    for model in pipe.components.values():
        if isinstance(model, torch.nn.Module):
            model.requires_grad_(False).eval()
    pipe.to(accelerator.device)
    pipe.set_progress_bar_config(disable=True)
    processing_resolution = args.processing_resolution or pipe.config.default_processing_resolution
    if processing_resolution > args.resolution:
        raise ValueError(
            f"The pipeline's default_processing_resolution {processing_resolution} exceeds --resolution "
            f"{args.resolution}: pass a smaller --processing_resolution."
        )

    refiner_kwargs = {}
    if args.refiner_config:
        with open(args.refiner_config) as f:
            refiner_kwargs = json.load(f)
    refiner = SparseMatteRefiner(
        context_channels=pipe.matting_decoder.config.fusion_channels[-1],
        **refiner_kwargs,
    )

    def predict(model, pixel_values, texts):
        alpha_lr, context = predict_low_resolution(pipe, pixel_values, texts, processing_resolution)
        # A tuple, not the output dataclass, which accelerate's mixed-precision wrapper cannot rebuild.
        return model(pixel_values, alpha_lr, context, backend=args.refiner_backend, return_dict=False)[0]

    def step(batch, prepared, backward):
        pixel_values = batch["pixel_values"].to(accelerator.device)
        alpha = predict(prepared["refiner"], pixel_values, batch["text"])
        # The decoder's loss, at the target resolution (appendix 6.3).
        loss, parts = matting_decoder_loss(alpha, batch["alpha"].to(alpha.device), args.laplacian_weight)
        # Where no pixel is uncertain the refiner convolves nothing and the loss would not reach its weights: a zero
        # term keeps every parameter in the graph, so backward (and DDP's gradient reduction) works on any batch.
        backward(loss + 0.0 * sum(p.sum() for p in prepared["refiner"].parameters()))
        return {
            "loss": loss.item(),
            **{f"loss_{k}": v.item() for k, v in parts.items()},
        }

    def validate(models, pixels, prompt):
        alpha = predict(models["refiner"], pixels.to(accelerator.device), [prompt])
        return {"alpha": alpha_to_pil(alpha[0].float().clamp(0, 1))}

    dataloader = make_dataloader(args, pipe.vae_scale_factor)
    trained = train(args, accelerator, {"refiner": refiner}, dataloader, step, validate)
    if accelerator.is_main_process:
        # Reloaded in full precision: the frozen copy above may have been cast for mixed precision.
        output = load_pipeline(args, refiner=trained["refiner"].eval())
        save_outputs(
            args,
            {"": output},
            "SoftGroundingMattingPipeline with the sparse up-sampling refiner: text-grounded alpha matting at "
            "any resolution.",
        )
    accelerator.end_training()


if __name__ == "__main__":
    main(parse_args())
