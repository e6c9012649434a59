"""The paper's losses on rows whose text names nothing: an all-zero alpha and an all-background region map are valid
targets (eqs. 2, 7, 8) and every loss stays finite on them, with the gradients that teach "nothing is here"."""

from types import SimpleNamespace

import numpy as np
import torch

from diffusers_matte.data.targets import REGION_BACKGROUND, downsample_region_map, known_mask, region_map
from diffusers_matte.losses import (
    coarse_alpha_loss,
    cross_attention_transparency_loss,
    laplacian_loss,
    matting_decoder_loss,
    region_cross_entropy_loss,
    self_attention_transparency_loss,
    semantic_guidance_loss,
    soft_grounding_distillation_loss,
    transparency_confidence_loss,
)

BATCH = 2


def _targets():
    """The training targets of two no-target rows at 64 px, as `TrainingTransform` builds them."""
    regions = downsample_region_map(region_map(np.zeros((64, 64), np.float32)), 8)
    alpha = torch.zeros(BATCH, 1, 64, 64)
    known = torch.from_numpy(known_mask(regions))[None, None].expand(BATCH, 1, 8, 8).contiguous()
    region_target = torch.from_numpy(regions.astype(np.int64))[None].expand(BATCH, 8, 8).contiguous()
    return alpha, known, region_target


def _capture(generator, requires_grad=False):
    leaf = lambda *shape: torch.randn(*shape, generator=generator, requires_grad=requires_grad)  # noqa: E731
    return SimpleNamespace(
        features={"up_blocks.0": leaf(BATCH, 4, 8, 8)},
        self_attention={(8, 8): leaf(BATCH, 64, 64).softmax(-1)},
        self_attention_kv_size={(8, 8): (8, 8)},
        cross_attention={(8, 8): leaf(BATCH, 64, 5).softmax(-1)},
    )


def test_every_loss_is_finite_on_all_zero_targets():
    generator = torch.Generator().manual_seed(0)
    alpha, known, region_target = _targets()
    assert (region_target == REGION_BACKGROUND).all() and (known == 1).all()
    teacher, student = _capture(generator), _capture(generator, requires_grad=True)
    coarse = torch.rand(BATCH, 1, 8, 8, generator=generator, requires_grad=True)
    logits = torch.randn(BATCH, 1, 8, 8, generator=generator, requires_grad=True)
    region_logits = torch.randn(BATCH, 3, 8, 8, generator=generator, requires_grad=True)
    prediction = torch.rand(BATCH, 1, 64, 64, generator=generator, requires_grad=True)

    losses = {
        "ce": region_cross_entropy_loss(region_logits, region_target),
        "sg": semantic_guidance_loss(teacher.features, student.features, known),
        "stm": self_attention_transparency_loss(teacher.self_attention, student.self_attention, alpha),
        "ctm": cross_attention_transparency_loss(teacher.cross_attention, student.cross_attention),
        "alpha_lr": coarse_alpha_loss(coarse, alpha),
        "r": transparency_confidence_loss(logits, known),
        "laplacian": laplacian_loss(prediction, alpha, mask=torch.zeros_like(alpha)),  # an empty unknown region
        "decoder": matting_decoder_loss(prediction, alpha)[0],
        "total": soft_grounding_distillation_loss(coarse, logits, alpha, known, teacher, student)[0],
    }
    for name, value in losses.items():
        assert torch.isfinite(value).all(), name
    # Eq. (5) reads alpha_GT only: both models' attention applied to zero is zero, so the row adds nothing.
    assert losses["stm"] == 0
    # Eqs. (7) and (8) pull alpha^lr and sigmoid(R) down everywhere, and eq. (2) towards the background class.
    losses["total"].backward()
    losses["ce"].backward()
    assert (coarse.grad > 0).all() and (logits.grad > 0).all()
    assert (region_logits.grad[:, REGION_BACKGROUND] < 0).all()
    assert torch.isfinite(student.features["up_blocks.0"].grad).all()
