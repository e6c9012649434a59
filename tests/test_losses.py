# Copyright 2026 The diffusers-matte authors. Licensed under the Apache License, Version 2.0.
"""Tests of diffusers_matte.losses: hand-computed cases, shape errors, gradients, save/load of Phi."""

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from scipy import ndimage

from diffusers_matte.losses import (
    DistillationLossWeights,
    coarse_alpha_loss,
    cross_attention_transparency_loss,
    downsample_alpha,
    gfm_laplacian_kernel,
    laplacian_loss,
    laplacian_pyramid,
    matting_decoder_loss,
    region_cross_entropy_loss,
    resize_known_mask,
    self_attention_transparency_loss,
    semantic_guidance_loss,
    soft_grounding_distillation_loss,
    transparency_confidence_loss,
)
from diffusers_matte.models.semantic_guidance_projector import (
    SemanticGuidanceProjection,
    SemanticGuidanceProjector,
)
from diffusers_matte.models.unet_matte import (
    MatteUNet2DConditionModel,
    distillation_feature_pairs,
)
from diffusers_matte.testing import get_dummy_unet_init_dict


@pytest.fixture
def generator():
    return torch.Generator().manual_seed(0)


def random_attention(batch, queries, keys, generator, requires_grad=False):
    """Row-stochastic maps like softmax outputs."""
    logits = torch.randn(batch, queries, keys, generator=generator, requires_grad=requires_grad)
    return logits, logits.softmax(-1)


# ------------------------------------------------------------------------------------------------ helpers


def test_downsample_alpha_is_pil_bilinear(generator):
    alpha = torch.tensor([[[[1.0, 0.0], [0.0, 0.0]]]])
    assert downsample_alpha(alpha, (1, 1)).item() == pytest.approx(0.25)
    assert downsample_alpha(alpha, (2, 2)) is alpha
    with pytest.raises(ValueError, match=r"`alpha` must have shape \(B, 1, H, W\)"):
        downsample_alpha(alpha[0], (1, 1))
    alpha = torch.rand(1, 1, 64, 48, generator=generator)
    pil = Image.fromarray(alpha[0, 0].numpy(), mode="F").resize((6, 8), Image.BILINEAR)
    assert np.allclose(downsample_alpha(alpha, (8, 6))[0, 0].numpy(), np.asarray(pil), atol=1e-6)


def test_resize_known_mask_marks_a_coarse_cell_unknown_if_any_pixel_is_transparent():
    mask = torch.ones(1, 1, 4, 4)
    mask[0, 0, 0, 0] = 0.0
    expected = torch.tensor([[[[0.0, 1.0], [1.0, 1.0]]]])
    assert torch.equal(resize_known_mask(mask, (2, 2)), expected)
    assert torch.equal(resize_known_mask(expected, (4, 4))[0, 0, :2, :2], torch.zeros(2, 2))


# ------------------------------------------------------------------------------------------------ eq. (2)


def test_region_cross_entropy_hand_computed():
    # One pixel, logits (log 2, 0, 0): p = (0.5, 0.25, 0.25).
    logits = torch.tensor([math.log(2.0), 0.0, 0.0]).view(1, 3, 1, 1)
    assert region_cross_entropy_loss(logits, torch.tensor([[[0]]])).item() == pytest.approx(math.log(2.0))
    assert region_cross_entropy_loss(logits, torch.tensor([[[2]]])).item() == pytest.approx(math.log(4.0))
    soft = torch.tensor([0.5, 0.0, 0.5]).view(1, 3, 1, 1)
    expected = 0.5 * math.log(2.0) + 0.5 * math.log(4.0)
    assert region_cross_entropy_loss(logits, soft).item() == pytest.approx(expected)


def test_region_cross_entropy_shape_errors():
    with pytest.raises(ValueError, match="3 channels"):
        region_cross_entropy_loss(torch.zeros(1, 2, 4, 4), torch.zeros(1, 4, 4, dtype=torch.long))
    with pytest.raises(ValueError, match=r"must have shape \(1, 4, 4\)"):
        region_cross_entropy_loss(torch.zeros(1, 3, 4, 4), torch.zeros(1, 2, 2, dtype=torch.long))
    with pytest.raises(ValueError, match="region_target"):
        region_cross_entropy_loss(torch.zeros(1, 3, 4, 4), torch.zeros(1, 4, 4))


# ------------------------------------------------------------------------------------------------ eq. (3), (4)


def test_projection_is_eq4_and_round_trips(tmp_path, generator):
    torch.manual_seed(0)
    projector = SemanticGuidanceProjector(["down_blocks.1", "up_blocks.0"], in_channels=[4, 6], out_channels=[8, 10])
    phi = projector.projections[0]
    assert isinstance(phi, SemanticGuidanceProjection)
    assert [tuple(m.kernel_size) for m in (phi.conv_in, phi.conv_mid, phi.conv_out)] == [(1, 1), (3, 3), (3, 3)]
    feature = torch.randn(2, 4, 5, 5, generator=generator)
    manual = phi.conv_out(phi.conv_mid(F.leaky_relu(phi.conv_in(feature), 0.01)))
    assert torch.allclose(phi(feature), manual)

    features = {
        "down_blocks.1": feature,
        "up_blocks.0": torch.randn(2, 6, 3, 3, generator=generator),
    }
    projected = projector(features)
    assert projected["up_blocks.0"].shape == (2, 10, 3, 3)
    projector.save_pretrained(tmp_path)
    loaded = SemanticGuidanceProjector.from_pretrained(tmp_path)
    assert list(loaded.config.feature_names) == ["down_blocks.1", "up_blocks.0"]
    for name, value in loaded(features).items():
        assert torch.equal(value, projected[name])


def test_projector_errors():
    with pytest.raises(ValueError, match="same length"):
        SemanticGuidanceProjector(["a", "b"], in_channels=[4], out_channels=[8, 8])
    with pytest.raises(ValueError, match="unique"):
        SemanticGuidanceProjector(["a", "a"], in_channels=[4, 4], out_channels=[8, 8])
    projector = SemanticGuidanceProjector(["a"], in_channels=[4], out_channels=[8])
    with pytest.raises(ValueError, match=r"missing \['a'\]"):
        projector({"b": torch.zeros(1, 4, 2, 2)})


def test_projector_from_features_and_layer_pairs(tmp_path):
    student = {"x": torch.zeros(1, 3, 4, 4)}
    projector = SemanticGuidanceProjector.from_features(student, {"x": torch.zeros(1, 7, 4, 4)})
    assert projector({"x": student["x"]})["x"].shape == (1, 7, 4, 4)
    with pytest.raises(ValueError, match="lack a student or teacher feature"):
        SemanticGuidanceProjector.from_features(student, {"y": torch.zeros(1, 7, 4, 4)})
    paired = SemanticGuidanceProjector.from_features(student, {"y": torch.zeros(1, 5, 4, 4)}, layer_pairs={"x": "y"})
    assert paired.layer_pairs == {"x": "y"}
    paired.save_pretrained(tmp_path)
    assert SemanticGuidanceProjector.from_pretrained(tmp_path).layer_pairs == {"x": "y"}
    teacher = {"y": torch.ones(1, 5, 4, 4)}
    expected = F.mse_loss(paired(student)["x"], teacher["y"])
    loss = semantic_guidance_loss(teacher, paired(student), torch.ones(1, 1, 4, 4), paired.layer_pairs)
    assert loss == expected


def test_semantic_guidance_hand_computed_and_masked():
    teacher = {"a": torch.zeros(1, 2, 2, 2), "b": torch.zeros(1, 1, 1, 1)}
    student = {"a": torch.ones(1, 2, 2, 2), "b": torch.full((1, 1, 1, 1), 3.0)}
    mask = torch.ones(1, 1, 2, 2)
    mask[0, 0, 0, 0] = 0.0  # one of the four pixels is transparent
    # Layer a: 2 channels x 3 known pixels of error 1, mean over 8 elements; layer b: its only cell covers the
    # transparent pixel, so it is masked out entirely. Layers are summed (eq. 3).
    assert semantic_guidance_loss(teacher, student, mask).item() == pytest.approx(6 / 8)
    assert semantic_guidance_loss(teacher, student, torch.ones(1, 1, 2, 2)).item() == pytest.approx(1.0 + 9.0)


def test_semantic_guidance_gradients_reach_student_and_phi_not_teacher(generator):
    projector = SemanticGuidanceProjector(["a"], in_channels=[3], out_channels=[5])
    student = torch.randn(2, 3, 4, 4, generator=generator, requires_grad=True)
    teacher = torch.randn(2, 5, 4, 4, generator=generator, requires_grad=True)
    loss = semantic_guidance_loss(
        {"a": teacher}, projector({"a": student}), torch.ones(2, 1, 8, 8), projector.layer_pairs
    )
    loss.backward()
    assert student.grad.abs().sum() > 0
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in projector.parameters())
    assert teacher.grad is None


def test_semantic_guidance_shape_errors():
    with pytest.raises(ValueError, match=r"'a'.*\(1, 3, 2, 2\).*\(1, 4, 2, 2\)"):
        semantic_guidance_loss(
            {"a": torch.zeros(1, 4, 2, 2)},
            {"a": torch.zeros(1, 3, 2, 2)},
            torch.ones(1, 1, 2, 2),
        )
    with pytest.raises(ValueError, match="known_mask"):
        semantic_guidance_loss(
            {"a": torch.zeros(1, 4, 2, 2)},
            {"a": torch.zeros(1, 4, 2, 2)},
            torch.ones(1, 2, 2),
        )
    with pytest.raises(ValueError, match="teacher_features"):
        semantic_guidance_loss({}, {"a": torch.zeros(1, 4, 2, 2)}, torch.ones(1, 1, 2, 2))


# ------------------------------------------------------------------------------------------------ eq. (5)


def test_stm_hand_computed_with_downsampled_student_keys():
    alpha = torch.tensor([[[[1.0, 0.0], [0.0, 0.0]]]])
    teacher = {(2, 2): torch.eye(4).unsqueeze(0)}  # propagates alpha unchanged: (1, 0, 0, 0)
    student = {(2, 2): torch.ones(1, 4, 1)}  # n x n/4: one key, alpha on the 1 x 1 key grid = mean = 0.25
    expected = (0.75**2 + 3 * 0.25**2) / 4
    assert self_attention_transparency_loss(teacher, student, alpha).item() == pytest.approx(expected)
    given = self_attention_transparency_loss(teacher, student, alpha, student_kv_sizes={(2, 2): (1, 1)})
    assert given.item() == pytest.approx(expected)


def test_stm_zero_when_student_equals_teacher_and_for_constant_alpha(generator):
    _, maps = random_attention(2, 16, 16, generator)
    alpha = torch.rand(2, 1, 8, 8, generator=generator)
    assert self_attention_transparency_loss({(4, 4): maps}, {(4, 4): maps.clone()}, alpha).item() == 0.0
    # Rows of a softmax sum to 1, so any maps propagate a constant alpha unchanged.
    _, student = random_attention(2, 16, 4, generator)
    constant = torch.full((2, 1, 8, 8), 0.3)
    assert self_attention_transparency_loss({(4, 4): maps}, {(4, 4): student}, constant).item() == pytest.approx(0.0)


def test_stm_n_by_n_over_j_maps_skipped_resolutions_and_gradients(generator):
    alpha = torch.rand(2, 1, 32, 32, generator=generator)
    _, teacher_8 = random_attention(2, 64, 64, generator)
    _, teacher_4 = random_attention(2, 16, 16, generator)
    _, teacher_2 = random_attention(2, 4, 4, generator)  # e.g. the mid block, pruned in the student
    logits_8, student_8 = random_attention(2, 64, 16, generator, requires_grad=True)  # k = 2: n x n/4
    logits_4, student_4 = random_attention(2, 16, 16, generator, requires_grad=True)
    teacher = {(8, 8): teacher_8, (4, 4): teacher_4, (2, 2): teacher_2}
    student = {(8, 8): student_8, (4, 4): student_4}
    loss = self_attention_transparency_loss(teacher, student, alpha, student_kv_sizes={(8, 8): (4, 4)})

    def level(t, s, key_grid):
        return F.mse_loss(s @ downsample_alpha(alpha, key_grid).flatten(1)[..., None], t @ alpha_on(t))

    def alpha_on(t):
        side = int(math.isqrt(t.shape[-1]))
        return downsample_alpha(alpha, (side, side)).flatten(1)[..., None]

    expected = (level(teacher_8, student_8, (4, 4)) + level(teacher_4, student_4, (4, 4))) / 2
    assert torch.allclose(loss, expected)
    loss.backward()
    assert logits_8.grad.abs().sum() > 0 and logits_4.grad.abs().sum() > 0


def test_stm_errors(generator):
    _, maps = random_attention(1, 16, 16, generator)
    alpha = torch.rand(1, 1, 4, 4, generator=generator)
    with pytest.raises(ValueError, match="no resolution"):
        self_attention_transparency_loss({(4, 4): maps}, {(2, 2): maps}, alpha)
    with pytest.raises(ValueError, match="16 queries"):
        self_attention_transparency_loss({(4, 4): maps}, {(4, 4): maps[:, :8]}, alpha)
    with pytest.raises(ValueError, match="cannot infer the key grid"):
        self_attention_transparency_loss({(4, 4): maps}, {(4, 4): maps[:, :, :5].softmax(-1)}, alpha)
    with pytest.raises(ValueError, match="key grid"):
        self_attention_transparency_loss(
            {(4, 4): maps},
            {(4, 4): maps[:, :, :4]},
            alpha,
            student_kv_sizes={(4, 4): (2, 1)},
        )
    with pytest.raises(ValueError, match="batch size"):
        self_attention_transparency_loss({(4, 4): maps}, {(4, 4): maps}, alpha.expand(2, -1, -1, -1))
    with pytest.raises(ValueError, match=r"alpha_gt.*\(B, 1, H, W\)"):
        self_attention_transparency_loss({(4, 4): maps}, {(4, 4): maps}, alpha[0])


# ------------------------------------------------------------------------------------------------ eq. (6)


def test_ctm_sum_reduction_hand_computed():
    teacher = {
        (1, 2): torch.tensor([[[1.0, 0.0], [0.5, 0.5]]]).repeat(2, 1, 1),
        (1, 1): torch.zeros(2, 1, 2),
    }
    student = {
        (1, 2): torch.tensor([[[0.0, 1.0], [0.5, 0.5]]]).repeat(2, 1, 1),
        (1, 1): torch.ones(2, 1, 2),
    }
    # Level (1, 2): per sample 1 + 1 = 2 (summed over queries and tokens), mean over the batch = 2.
    # Level (1, 1): per sample 2. Mean over the two levels = 2.
    assert cross_attention_transparency_loss(teacher, student).item() == pytest.approx(2.0)
    only_one = {(1, 2): student[(1, 2)]}
    assert cross_attention_transparency_loss(teacher, only_one).item() == pytest.approx(2.0)


def test_ctm_zero_for_equal_maps_gradients_and_errors(generator):
    _, teacher = random_attention(2, 16, 7, generator)
    assert cross_attention_transparency_loss({(4, 4): teacher}, {(4, 4): teacher.clone()}).item() == 0.0
    logits, student = random_attention(2, 16, 7, generator, requires_grad=True)
    cross_attention_transparency_loss({(4, 4): teacher}, {(4, 4): student}).backward()
    assert logits.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="same shape"):
        cross_attention_transparency_loss({(4, 4): teacher}, {(4, 4): student[:, :, :5]})
    with pytest.raises(ValueError, match="no resolution"):
        cross_attention_transparency_loss({(4, 4): teacher}, {(8, 8): student})


# ------------------------------------------------------------------------------------------------ eq. (7), (8)


def test_coarse_alpha_loss_downsamples_the_ground_truth(generator):
    alpha_gt = torch.tensor([[[[1.0, 0.0], [0.0, 0.0]]]])
    coarse = torch.tensor([[[[0.5]]]], requires_grad=True)
    # Down-sampled ground truth: the mean 0.25; L1 = 0.25.
    loss = coarse_alpha_loss(coarse, alpha_gt)
    assert loss.item() == pytest.approx(0.25)
    large_gt = torch.rand(1, 1, 16, 16, generator=generator)
    small = torch.rand(1, 1, 4, 4, generator=generator)
    assert coarse_alpha_loss(small, large_gt) == F.l1_loss(small, downsample_alpha(large_gt, (4, 4)))
    loss.backward()
    assert coarse.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="one channel"):
        coarse_alpha_loss(torch.zeros(1, 2, 2, 2), alpha_gt)
    with pytest.raises(ValueError, match="batch size"):
        coarse_alpha_loss(torch.zeros(2, 1, 2, 2), alpha_gt)


def test_transparency_confidence_loss_targets_the_transparent_region():
    known = torch.tensor([[[[1.0, 0.0]]]])  # right pixel transparent: M_hat = (0, 1)
    logits = torch.tensor([[[[0.0, 2.0]]]], requires_grad=True)
    sigmoid_2 = 1 / (1 + math.exp(-2.0))
    expected = (-math.log(0.5) - math.log(sigmoid_2)) / 2
    loss = transparency_confidence_loss(logits, known)
    assert loss.item() == pytest.approx(expected)
    loss.backward()
    assert logits.grad[0, 0, 0, 1] < 0  # pushes R up on the transparent pixel
    with pytest.raises(ValueError, match="transparency_logits"):
        transparency_confidence_loss(torch.zeros(1, 2, 1, 2), known)


# ------------------------------------------------------------------------------------------------ eq. (9)


def capture(generator, kv_keys=16, requires_grad=False):
    """A stand-in for the UNet's capture(): one feature, self-attention at 8x8 (keys downsampled) and 4x4."""
    leaf = lambda *shape: torch.randn(*shape, generator=generator, requires_grad=requires_grad)  # noqa: E731
    return SimpleNamespace(
        features={"up_blocks.0": leaf(2, 4, 8, 8)},
        self_attention={
            (8, 8): leaf(2, 64, kv_keys).softmax(-1),
            (4, 4): leaf(2, 16, 16).softmax(-1),
        },
        self_attention_kv_size={
            (8, 8): (4, 4) if kv_keys == 16 else (8, 8),
            (4, 4): (4, 4),
        },
        cross_attention={
            (8, 8): leaf(2, 64, 5).softmax(-1),
            (4, 4): leaf(2, 16, 5).softmax(-1),
        },
    )


def test_total_loss_is_the_weighted_sum_of_its_parts(generator):
    teacher, student = capture(generator, kv_keys=64), capture(generator, requires_grad=True)
    projector = SemanticGuidanceProjector(["up_blocks.0"], in_channels=[4], out_channels=[4])
    coarse = torch.rand(2, 1, 8, 8, generator=generator, requires_grad=True)
    logits = torch.randn(2, 1, 8, 8, generator=generator, requires_grad=True)
    alpha_gt = torch.rand(2, 1, 32, 32, generator=generator)
    known = torch.ones(2, 1, 32, 32)
    known[..., 10:20, 4:30] = 0.0  # a transparent band

    features = student.features
    student.features = projector(features)
    total, parts = soft_grounding_distillation_loss(
        coarse, logits, alpha_gt, known, teacher, student, projector.layer_pairs
    )
    assert set(parts) == {"stm", "ctm", "sg", "alpha_lr", "r"}
    assert parts["stm"] == self_attention_transparency_loss(
        teacher.self_attention,
        student.self_attention,
        alpha_gt,
        None,
        student.self_attention_kv_size,
    )
    assert parts["r"] == transparency_confidence_loss(logits, known)
    expected = 10 * parts["stm"] + 0.1 * parts["ctm"] + 0.5 * parts["sg"] + 10 * parts["alpha_lr"] + parts["r"]
    assert torch.allclose(total, expected)
    total.backward()
    for tensor in (coarse, logits, features["up_blocks.0"]):
        assert tensor.grad.abs().sum() > 0
    assert all(p.grad is not None for p in projector.parameters())


def test_total_loss_default_weights_and_ablation(generator):
    assert DistillationLossWeights() == DistillationLossWeights(stm=10, ctm=0.1, sg=0.5, alpha_lr=10, r=1)
    coarse = torch.rand(1, 1, 4, 4, generator=generator)
    logits = torch.randn(1, 1, 4, 4, generator=generator)
    alpha_gt, known = torch.rand(1, 1, 4, 4, generator=generator), torch.ones(1, 1, 4, 4)
    only_pixels = DistillationLossWeights(stm=0, ctm=0, sg=0)
    total, parts = soft_grounding_distillation_loss(coarse, logits, alpha_gt, known, weights=only_pixels)
    assert parts["stm"] == 0 and parts["sg"] == 0
    assert torch.allclose(
        total,
        10 * coarse_alpha_loss(coarse, alpha_gt) + transparency_confidence_loss(logits, known),
    )
    with pytest.raises(ValueError, match="L_STM has weight 10.0"):
        soft_grounding_distillation_loss(coarse, logits, alpha_gt, known)


# ------------------------------------------------------------------------------------------------ decoder (3.4)


def test_gfm_kernel_is_the_normalised_sum_not_the_gaussian_product():
    g = np.exp(-(np.arange(-2, 3) ** 2.0))  # exp(-d^2 / 2)^2 for sigma = 1
    expected = g[None, :] + g[:, None]
    expected /= expected.sum()
    kernel = gfm_laplacian_kernel()
    assert np.allclose(kernel.numpy(), expected, atol=1e-7)
    gaussian = np.outer(g, g) / np.outer(g, g).sum()
    assert not np.allclose(kernel.numpy(), gaussian, atol=1e-3)


def test_laplacian_pyramid_matches_an_independent_scipy_computation(generator):
    image = torch.rand(1, 1, 32, 32, generator=generator)
    pyramid = laplacian_pyramid(image, levels=5)
    assert [tuple(level.shape[-2:]) for level in pyramid] == [
        (32, 32),
        (16, 16),
        (8, 8),
        (4, 4),
        (2, 2),
        (1, 1),
    ]
    array = image[0, 0].double().numpy()
    blurred = ndimage.convolve(array, gfm_laplacian_kernel().double().numpy(), mode="nearest")  # replicate
    assert np.allclose(pyramid[0][0, 0].numpy(), array - blurred, atol=1e-6)
    pooled = blurred.reshape(16, 2, 16, 2).mean(axis=(1, 3))
    blurred_1 = ndimage.convolve(pooled, gfm_laplacian_kernel().double().numpy(), mode="nearest")
    assert np.allclose(pyramid[1][0, 0].numpy(), pooled - blurred_1, atol=1e-6)


def test_laplacian_loss_of_constant_mattes_is_their_difference_once():
    # Constant maps have no band-pass content; only the low-pass level differs, by |a - b|, with weight 1.
    assert laplacian_loss(torch.full((1, 1, 32, 32), 0.7), torch.full((1, 1, 32, 32), 0.2)).item() == pytest.approx(
        0.5
    )


def test_matting_decoder_loss(generator):
    alpha = torch.rand(2, 1, 64, 64, generator=generator, requires_grad=True)
    alpha_gt = torch.rand(2, 1, 64, 64, generator=generator)
    total, parts = matting_decoder_loss(alpha, alpha_gt)
    assert parts["l1"] == F.l1_loss(alpha, alpha_gt)
    assert torch.allclose(total, parts["l1"] + parts["laplacian"])
    total.backward()
    assert alpha.grad.abs().sum() > 0
    assert matting_decoder_loss(alpha_gt, alpha_gt)[0].item() == 0.0
    with pytest.raises(ValueError, match="same shape"):
        matting_decoder_loss(alpha, alpha_gt[..., :32])
    with pytest.raises(ValueError, match=">= 32"):
        matting_decoder_loss(alpha[..., :16, :16], alpha_gt[..., :16, :16])


def test_masked_laplacian_loss_ignores_pixels_outside_the_mask(generator):
    alpha_gt = torch.rand(1, 1, 32, 32, generator=generator)
    mask = torch.zeros(1, 1, 32, 32)
    mask[..., 8:24, 8:24] = 1.0
    changed_outside = alpha_gt * mask + (1 - mask) * torch.rand(1, 1, 32, 32, generator=generator)
    assert laplacian_loss(changed_outside, alpha_gt, mask=mask).item() == 0.0
    assert laplacian_loss(changed_outside, alpha_gt).item() > 0.0


# ------------------------------------------------------------------------------------------------ with the UNet


@pytest.fixture(scope="module")
def teacher_unet():
    torch.manual_seed(0)
    config = get_dummy_unet_init_dict(prediction_head="region")
    return MatteUNet2DConditionModel(**config).eval()


def unet_pair(teacher, generator, **student_config):
    student = MatteUNet2DConditionModel.from_teacher(teacher, prediction_head="matte", **student_config)
    latents = torch.randn(2, 4, 16, 16, generator=generator)
    text = torch.randn(2, 5, 24, generator=generator)
    return student, latents, text


def run_captured(unet, latents, text, features, no_grad=False):
    with torch.set_grad_enabled(not no_grad), unet.capture(features=features, attention_maps=True) as captured:
        sample = unet(latents, 0, text).sample
    return sample, captured


def test_distillation_loss_on_captured_unet_maps(teacher_unet, generator):
    teacher = teacher_unet
    student, latents, text = unet_pair(teacher, generator, variant="tiny", self_attention_kv_downsample=(-1, 2, 2))
    # "tiny" drops the lowest level: student layers are paired with teacher layers by the BK-SDM mapping.
    pairs = {s: t for t, s in distillation_feature_pairs(teacher.config, "tiny")}
    _, teacher_captured = run_captured(teacher, latents, text, list(pairs.values()), no_grad=True)
    sample, student_captured = run_captured(student, latents.clone(), text, list(pairs))
    projector = SemanticGuidanceProjector.from_features(
        student_captured.features, teacher_captured.features, layer_pairs=pairs
    )
    student_captured.features = projector(student_captured.features)  # Phi, as train_distill.py applies it
    # A hard square with a soft (transparent) vertical band through it.
    alpha_gt = torch.zeros(2, 1, 128, 128)
    alpha_gt[..., 32:96, 32:96] = 1.0
    alpha_gt[..., 32:96, 56:72] = torch.rand(2, 1, 64, 16, generator=generator)
    known = torch.ones(2, 1, 128, 128)
    known[..., 32:96, 56:72] = 0.0

    total, parts = soft_grounding_distillation_loss(
        sample[:, :1],
        sample[:, 1:],
        alpha_gt,
        known,
        teacher_captured,
        student_captured,
        projector.layer_pairs,
    )
    assert all(torch.isfinite(value) and value > 0 for value in parts.values())
    total.backward()
    assert all(p.grad is not None for p in projector.parameters())
    kv_convs = [p for n, p in student.named_parameters() if "kv_downsample" in n or "to_k" in n]
    assert kv_convs and all(p.grad is not None and p.grad.abs().sum() > 0 for p in kv_convs)


def test_attention_losses_vanish_for_an_unpruned_copy_of_the_teacher(teacher_unet, generator):
    teacher = teacher_unet
    student, latents, text = unet_pair(teacher, generator, variant=None)
    _, teacher_captured = run_captured(teacher, latents, text, [], no_grad=True)
    _, student_captured = run_captured(student.eval(), latents, text, [], no_grad=True)
    alpha_gt = torch.rand(2, 1, 128, 128, generator=generator)
    stm = self_attention_transparency_loss(teacher_captured.self_attention, student_captured.self_attention, alpha_gt)
    ctm = cross_attention_transparency_loss(teacher_captured.cross_attention, student_captured.cross_attention)
    assert stm.item() == pytest.approx(0.0, abs=1e-10) and ctm.item() == pytest.approx(0.0, abs=1e-8)
