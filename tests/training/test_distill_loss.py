# Copyright 2026 The diffusers-matte authors. Licensed under the Apache License, Version 2.0.
"""Stage 2's loss wiring: the projector pairs student and teacher layers, the loss compares the projected features
with the paired teacher features, and the numbers on a fixed batch are pinned (they are those of the earlier wiring,
which renamed the student's features to the teacher's names by hand)."""

import importlib.util
from pathlib import Path

import pytest
import torch

from diffusers_matte.losses import DistillationLossWeights
from diffusers_matte.models.unet_matte import MatteUNet2DConditionModel, distillation_feature_pairs
from diffusers_matte.testing import get_dummy_unet_init_dict

SCRIPT = Path(__file__).resolve().parents[2] / "training" / "train_distill.py"


@pytest.fixture(scope="module")
def train_distill():
    spec = importlib.util.spec_from_file_location("train_distill", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def setup(train_distill):
    torch.manual_seed(0)
    teacher = MatteUNet2DConditionModel(**get_dummy_unet_init_dict(prediction_head="region")).eval()
    student = MatteUNet2DConditionModel.from_teacher(
        teacher, "tiny", prediction_head="matte", self_attention_kv_downsample=(-1, 2, 2)
    ).eval()
    pairs = distillation_feature_pairs(teacher.config, "tiny")
    text_dim = teacher.config.cross_attention_dim
    torch.manual_seed(1)
    projector = train_distill.build_projector(teacher, student, pairs, 16, text_dim)
    generator = torch.Generator().manual_seed(2)
    latents = torch.randn(2, teacher.config.in_channels, 16, 16, generator=generator)
    text = torch.randn(2, 5, text_dim, generator=generator)
    batch = {
        "alpha": torch.rand(2, 1, 32, 32, generator=generator),
        "known_mask": (torch.rand(2, 1, 32, 32, generator=generator) > 0.5).float(),
    }
    return teacher, student, projector, pairs, latents, text, batch


def test_projector_is_keyed_by_student_layers_and_records_their_teacher_layers(setup):
    _, _, projector, pairs, *_ = setup
    assert projector.layer_pairs == {student: teacher for teacher, student in pairs}
    assert any(student != teacher for teacher, student in pairs)  # "tiny" pairs differently named layers
    assert list(projector.config.feature_names) == [student for _, student in pairs]
    assert sorted(projector.state_dict())[0] == "projections.0.conv_in.bias"  # the keys of earlier checkpoints


def test_distillation_loss_on_a_fixed_batch(train_distill, setup):
    teacher, student, projector, _, latents, text, batch = setup
    calls = []
    loss, parts = train_distill.distillation_loss(
        teacher, student, projector, latents, text, batch, DistillationLossWeights(), calls.append
    )
    assert calls == [loss]
    assert loss.item() == pytest.approx(2.01242733001709, abs=1e-5)
    expected = {"stm": 3e-06, "ctm": 0.324715, "sg": 0.037315, "alpha_lr": 0.11234, "r": 0.837867}
    assert {k: round(v.item(), 6) for k, v in parts.items()} == pytest.approx(expected, abs=2e-6)


def test_without_distillation_only_the_matte_terms_count(train_distill, setup):
    teacher, student, _, _, latents, text, batch = setup
    weights = DistillationLossWeights(stm=0.0, ctm=0.0, sg=0.0)
    loss, parts = train_distill.distillation_loss(
        teacher, student, None, latents, text, batch, weights, lambda _: None
    )
    assert parts["stm"] == parts["ctm"] == parts["sg"] == 0
    expected = weights.alpha_lr * parts["alpha_lr"] + weights.r * parts["r"]
    assert loss.item() == pytest.approx(expected.item())
