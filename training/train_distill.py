#!/usr/bin/env python
# Copyright 2026 The diffusers-matte authors. Licensed under the Apache License, Version 2.0.
"""Stage 2 of the paper (sections 3.2.2 and 3.3): soft grounding in transparency, by distillation.

The frozen stage-1 teacher guides a BK-SDM-pruned student with optimised self-attention, built from it by
`MatteUNet2DConditionModel.from_teacher`. The student predicts the coarse alpha alpha^lr and the transparency
logit R; the loss is eq. (9): L_STM (eq. 5) + L_CTM (eq. 6) + L_SG with the projections Phi (eqs. 3-4)
+ L_alpha^lr (eq. 7) + L_R (eq. 8).

    accelerate launch training/train_distill.py \
        --pretrained_model_name_or_path stable-diffusion-v1-5/stable-diffusion-v1-5 \
        --teacher_model_name_or_path teacher --output_dir student --student_variant tiny --kv_downsample -1 2 2

`--no_distillation` trains the same student from the teacher's weights with L_alpha^lr + L_R only (the paper's
ablation "localisation, then fine-tune the small student"). The output folder holds `unet/` (the student),
`text_adapter/` and `projector/`.
"""

import argparse

import torch

from diffusers_matte.losses import DistillationLossWeights, soft_grounding_distillation_loss
from diffusers_matte.models.semantic_guidance_projector import SemanticGuidanceProjector
from diffusers_matte.models.text_adapter import TextAdapter
from diffusers_matte.models.unet_matte import (
    MatteUNet2DConditionModel,
    distillation_feature_pairs,
)
from diffusers_matte.pipelines.soft_grounding.image_processor import alpha_to_pil
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
    add_training_args(parser, stage="distill")
    parser.add_argument(
        "--teacher_model_name_or_path",
        required=True,
        help="stage-1 output (unet/, text_adapter/)",
    )
    parser.add_argument("--student_variant", choices=["base", "small", "tiny", "none"], default="tiny")
    parser.add_argument(
        "--kv_downsample",
        type=int,
        nargs="+",
        default=[-1, 2, 2],
        help="per-level factors; 1 1 1 keeps full self-attention",
    )
    parser.add_argument(
        "--no_distillation",
        action="store_true",
        help="L_alpha^lr + L_R only (ablation)",
    )
    parser.add_argument("--train_text_adapter", action="store_true", help="also train the text adapter")
    defaults = DistillationLossWeights()
    for name in ("stm", "ctm", "sg", "alpha_lr", "r"):
        parser.add_argument(
            f"--lambda_{name}",
            type=float,
            default=getattr(defaults, name),
            help=f"weight of L_{name} in eq. (9)",
        )
    args = parser.parse_args(input_args)
    validate_args(args)
    return args


def loss_weights(args: argparse.Namespace) -> DistillationLossWeights:
    distil = 0.0 if args.no_distillation else 1.0
    return DistillationLossWeights(
        stm=distil * args.lambda_stm,
        ctm=distil * args.lambda_ctm,
        sg=distil * args.lambda_sg,
        alpha_lr=args.lambda_alpha_lr,
        r=args.lambda_r,
    )


def build_projector(teacher, student, pairs, latent_size: int, text_dim: int) -> SemanticGuidanceProjector:
    """One Phi per distilled (teacher layer, student layer) pair, its channels read off a dry run at the training
    resolution. The projector keeps the pairing: it is keyed by student layers and records their teacher layers."""
    latents = torch.zeros(1, teacher.config.in_channels, latent_size, latent_size)
    text = torch.zeros(1, 1, text_dim)
    with (
        torch.no_grad(),
        teacher.capture(features=[t for t, _ in pairs]) as t_cap,
        student.capture(features=[s for _, s in pairs]) as s_cap,
    ):
        teacher(latents, 0, text)
        student(latents, 0, text)
    return SemanticGuidanceProjector.from_features(s_cap.features, t_cap.features, {s: t for t, s in pairs})


def distillation_loss(teacher, student, projector, latents, text, batch, weights, backward, unwrap=lambda m: m):
    """Eq. (9) on one batch, `backward` called on it while the student's capture is open (gradient checkpointing
    recomputes inside it). `student` and `projector` may be DDP-wrapped (`unwrap` gives the modules): Phi runs
    through the wrapper so that its gradients synchronise. `projector` is None when L_SG is off."""
    distil = any((weights.stm, weights.ctm, weights.sg))
    layer_pairs = unwrap(projector).layer_pairs if projector is not None else {}
    teacher_cap = None
    if distil:
        features = list(layer_pairs.values())
        with torch.no_grad(), teacher.capture(features=features, attention_maps=True) as teacher_cap:
            teacher(latents, teacher.config.prediction_timestep, text)
    student_module = unwrap(student)
    with student_module.capture(features=list(layer_pairs), attention_maps=distil) as student_cap:
        sample = student(latents, student_module.config.prediction_timestep, text).sample
        if projector is not None:
            student_cap.features = projector(student_cap.features)  # Phi, eq. (4)
        loss, parts = soft_grounding_distillation_loss(  # eq. (9)
            sample[:, :1],
            sample[:, 1:2],
            batch["alpha"].to(sample.device),
            batch["known_mask"].to(sample.device),
            teacher_cap,
            student_cap,
            layer_pairs=layer_pairs,
            weights=weights,
        )
        backward(loss)
    return loss, parts


def main(args: argparse.Namespace) -> None:
    accelerator = make_accelerator(args)
    encoders = FrozenEncoders.from_pretrained(args, accelerator)
    teacher = MatteUNet2DConditionModel.from_pretrained(args.teacher_model_name_or_path, subfolder="unet")
    encoders.check_unet(teacher)
    text_adapter = TextAdapter.from_pretrained(args.teacher_model_name_or_path, subfolder="text_adapter")
    variant = None if args.student_variant == "none" else args.student_variant
    kv = tuple(args.kv_downsample)
    student, info = MatteUNet2DConditionModel.from_teacher(
        teacher,
        variant,
        output_loading_info=True,
        prediction_head="matte",
        self_attention_kv_downsample=None if all(k == 1 for k in kv) else kv,
    )
    accelerator.print(f"Student: {len(info['copied_keys'])} tensors from the teacher, {len(info['new_keys'])} new.")
    if args.gradient_checkpointing:
        student.enable_gradient_checkpointing()
    teacher.requires_grad_(False).eval().to(accelerator.device)
    text_adapter.requires_grad_(args.train_text_adapter)
    if not args.train_text_adapter:
        text_adapter.eval().to(accelerator.device)

    weights = loss_weights(args)
    pairs = distillation_feature_pairs(teacher.config, variant) if weights.sg else []
    models = {"unet": student}
    if pairs:
        latent_size = args.resolution // encoders.latent_factor
        text_dim = encoders.text_encoder.config.hidden_size
        models["projector"] = build_projector(teacher, student, pairs, latent_size, text_dim)
    if args.train_text_adapter:
        models["text_adapter"] = text_adapter

    def step(batch, prepared, backward):
        latents = encoders.encode_image(batch["pixel_values"])
        text = prepared.get("text_adapter", text_adapter)(encoders.encode_text(batch["text"]))
        loss, parts = distillation_loss(
            teacher, prepared["unet"], prepared.get("projector"), latents, text, batch, weights, backward,
            unwrap=accelerator.unwrap_model,
        )  # fmt: skip
        return {"loss": loss.item(), **{f"loss_{k}": v.item() for k, v in parts.items()}}

    def validate(models, pixels, prompt):  # the coarse alpha and the transparency sigmoid(R)
        text = models.get("text_adapter", text_adapter)(encoders.encode_text([prompt]))
        prediction = models["unet"].predict(encoders.encode_image(pixels), text)
        return {
            "coarse_alpha": alpha_to_pil(prediction.coarse_alpha[0].float().clamp(0, 1)),
            "transparency": alpha_to_pil(torch.sigmoid(prediction.transparency_logits[0].float())),
        }

    dataloader = make_dataloader(args, encoders.latent_factor)
    trained = train(args, accelerator, models, dataloader, step, validate)
    if accelerator.is_main_process:
        trained.setdefault("text_adapter", text_adapter)
        save_outputs(
            args,
            trained,
            "Student of stage 2 (soft grounding in transparency): coarse alpha and R.",
        )
    accelerator.end_training()


if __name__ == "__main__":
    main(parse_args())
