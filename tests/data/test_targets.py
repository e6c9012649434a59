"""Tests for the training targets (paper Sec. 3.2) and the row-to-tensor transform."""

import io

import numpy as np
import pytest
import torch
from PIL import Image

from diffusers_matte.data.targets import (
    REGION_BACKGROUND,
    REGION_FOREGROUND,
    REGION_TRANSPARENT,
    alpha_to_numpy,
    downsample_alpha,
    downsample_region_map,
    elliptical_kernel,
    known_mask,
    region_map,
    region_one_hot,
    transparent_mask,
    trimap_from_mask,
)
from diffusers_matte.data.transforms import TrainingTransform, collate_training_examples


def _disk_alpha(size=128, radius=40, soft=0):
    yy, xx = np.mgrid[:size, :size]
    dist = np.sqrt((yy - size / 2) ** 2 + (xx - size / 2) ** 2)
    if soft:
        return np.clip((radius - dist) / soft + 0.5, 0, 1).astype(np.float32)
    return (dist <= radius).astype(np.float32)


def test_elliptical_kernel_is_symmetric_disk():
    kernel = elliptical_kernel(15)
    assert kernel.shape == (15, 15)
    assert kernel[7].all() and kernel[:, 7].all()
    assert not kernel[0, 0] and not kernel[14, 14]
    np.testing.assert_array_equal(kernel, kernel.T)
    np.testing.assert_array_equal(kernel, kernel[::-1])


def test_region_map_hard_edge_opens_band_of_kernel_width():
    alpha = _disk_alpha(radius=40)
    regions = region_map(alpha, kernel_size=15)
    centre = 64
    # along the row through the centre, the edge at x = 64 + 40 gets a band of about 7 px each side
    row = regions[centre]
    transparent_cols = np.where(row == REGION_TRANSPARENT)[0]
    right = transparent_cols[transparent_cols > centre]
    assert 96 <= right.min() <= 99 and 104 <= right.max() <= 112
    assert row[centre] == REGION_FOREGROUND and row[2] == REGION_BACKGROUND
    # kernel 1 means no erosion: the region map equals the binary alpha
    assert (region_map(alpha, kernel_size=1) == alpha.astype(np.uint8)).all()


def test_region_map_soft_alpha_is_transparent_and_grows_with_kernel():
    alpha = _disk_alpha(radius=40, soft=10)
    small = region_map(alpha, kernel_size=3)
    large = region_map(alpha, kernel_size=15)
    soft_band = (alpha > 0.01) & (alpha < 0.99)
    assert (small[soft_band] == REGION_TRANSPARENT).all()
    assert (large == REGION_TRANSPARENT).sum() > (small == REGION_TRANSPARENT).sum()


def test_region_map_keeps_objects_touching_border():
    alpha = np.zeros((64, 64), np.float32)
    alpha[:, :32] = 1.0
    regions = region_map(alpha, kernel_size=15)
    assert regions[0, 0] == REGION_FOREGROUND and regions[63, 63] == REGION_BACKGROUND


def test_downsample_region_map_marks_mixed_cells_transparent():
    regions = np.zeros((16, 16), np.uint8)
    regions[:8, :8] = REGION_FOREGROUND
    regions[8:, 8:] = REGION_FOREGROUND
    regions[3, 12] = REGION_TRANSPARENT
    regions[12, 3] = REGION_FOREGROUND  # fg pixel inside a background cell
    low = downsample_region_map(regions, 8)
    expected = np.array(
        [
            [REGION_FOREGROUND, REGION_TRANSPARENT],
            [REGION_TRANSPARENT, REGION_FOREGROUND],
        ]
    )
    np.testing.assert_array_equal(low, expected)
    with pytest.raises(ValueError, match="divisible"):
        downsample_region_map(np.zeros((10, 16), np.uint8), 8)


def test_masks_are_complements_and_one_hot_matches():
    regions = np.array([[0, 1], [2, 1]], np.uint8)
    m = known_mask(regions)
    np.testing.assert_array_equal(m, [[1, 1], [0, 1]])
    np.testing.assert_array_equal(transparent_mask(regions), 1 - m)
    onehot = region_one_hot(regions)
    assert onehot.shape == (3, 2, 2)
    np.testing.assert_array_equal(onehot.argmax(0), regions)
    np.testing.assert_array_equal(onehot.sum(0), np.ones((2, 2)))


def test_downsample_alpha_preserves_coverage_of_thin_lines():
    alpha = torch.zeros(1, 64, 64)
    alpha[:, :, 3::8] = 1.0  # one-pixel lines every 8 px: a naive bilinear sample would miss every one
    low = downsample_alpha(alpha, 8)
    assert low.shape == (1, 8, 8)
    assert torch.allclose(low.mean(), alpha.mean(), atol=0.02)
    naive = downsample_alpha(alpha, 8, antialias=False)
    assert naive.max() < 0.6  # why antialias is the default
    with pytest.raises(ValueError):
        downsample_alpha(torch.zeros(4), 2)


def test_alpha_to_numpy_accepts_formats_and_rejects_bad_input():
    a = (np.arange(16, dtype=np.uint8) * 16).reshape(4, 4)
    ref = a.astype(np.float32) / 255
    for value in (a, Image.fromarray(a), torch.from_numpy(ref)[None], ref):
        np.testing.assert_allclose(alpha_to_numpy(value), ref, atol=1e-6)
    with pytest.raises(ValueError, match="single-channel"):
        alpha_to_numpy(np.zeros((2, 2, 3), np.uint8))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        alpha_to_numpy(np.full((2, 2), 3.0))


def test_trimap_from_mask_has_unknown_band_on_boundary_only():
    mask = _disk_alpha(radius=30) > 0.5
    trimap = trimap_from_mask(mask, kernel_size=9)
    assert set(np.unique(trimap)) == {0, 128, 255}
    edge = mask ^ np.roll(mask, 1, axis=1)
    assert (trimap[edge] == 128).all()
    assert trimap[64, 64] == 255 and trimap[0, 0] == 0


def _row(size=(96, 80), seed=0):
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    alpha = np.asarray(Image.fromarray((_disk_alpha(128, 40, soft=6) * 255).astype(np.uint8)).resize(size))
    buf = io.BytesIO()
    Image.fromarray(alpha).save(buf, format="PNG")
    return {
        "image": Image.fromarray(image),
        "alpha": {"bytes": buf.getvalue(), "path": None},
        "texts": ["a", "b", "c", "d"],
        "source": "unit",
    }


def test_training_transform_shapes_ranges_and_consistency():
    transform = TrainingTransform(resolution=64, alpha_factors=(16, 32), kernel_size=5, seed=0)
    out = transform(_row())
    assert out["pixel_values"].shape == (3, 64, 64)
    assert -1.0 <= out["pixel_values"].min() and out["pixel_values"].max() <= 1.0
    assert out["alpha"].shape == (1, 64, 64) and out["alpha_lr"].shape == (1, 8, 8)
    assert out["alpha_down16"].shape == (1, 4, 4) and out["alpha_down32"].shape == (
        1,
        2,
        2,
    )
    assert out["region_map"].dtype == torch.int64 and out["region_map"].shape == (8, 8)
    torch.testing.assert_close(out["known_mask"] + out["transparent_mask"], torch.ones(1, 8, 8))
    # foreground cells of the region map are where the low-res alpha is (almost) one
    fg = out["region_map"] == REGION_FOREGROUND
    assert fg.any() and (out["alpha_lr"][0][fg] > 0.95).all()
    assert out["text"] in "abcd" and out["source"] == "unit"


def test_training_transform_text_choice_is_seeded_and_reseedable():
    row = _row()

    def picks(t):
        return [t(row)["text"] for _ in range(12)]

    assert picks(TrainingTransform(resolution=32, alpha_factors=(), seed=3)) == picks(
        TrainingTransform(resolution=32, alpha_factors=(), seed=3)
    )
    assert len(set(picks(TrainingTransform(resolution=32, alpha_factors=(), seed=3)))) > 1
    first = TrainingTransform(resolution=32, alpha_factors=(), text_choice="first")
    assert picks(first) == ["a"] * 12
    t = TrainingTransform(resolution=32, alpha_factors=(), seed=3)
    t.reseed(1)
    assert picks(t) != picks(TrainingTransform(resolution=32, alpha_factors=(), seed=3))


def test_training_transform_rejects_bad_arguments():
    with pytest.raises(ValueError, match="latent_factor"):
        TrainingTransform(resolution=60)
    with pytest.raises(ValueError, match="text_choice"):
        TrainingTransform(text_choice="all")
    row = _row()
    row["image"] = row["image"].resize((10, 10))
    with pytest.raises(ValueError, match="differ in size"):
        TrainingTransform(resolution=32)(row)


def test_collate_stacks_tensors_and_lists_strings():
    t = TrainingTransform(resolution=32, alpha_factors=())
    batch = collate_training_examples([t(_row(seed=0)), t(_row(seed=1))])
    assert batch["pixel_values"].shape == (2, 3, 32, 32)
    assert isinstance(batch["text"], list) and len(batch["text"]) == 2
    with pytest.raises(ValueError):
        collate_training_examples([])


def test_package_exports_resolve_lazily():
    import diffusers_matte.data as data

    assert set(data.__all__) == set(data._EXPORTS)
    for name in data.__all__:
        assert getattr(data, name) is not None
    with pytest.raises(AttributeError, match="no attribute"):
        data.not_a_name
