"""Tests for GFM's composition augmentation (RSSN) as used for composite sets."""

import numpy as np
import pytest

from diffusers_matte.data.augment import (
    CompositeAugment,
    add_noise,
    blur_background,
    box_blur,
    composite_rssn,
    gfm_crop,
    swap_left_right,
)
from diffusers_matte.data.transforms import TrainingTransform


def _scene(size=64):
    rng = np.random.default_rng(0)
    fg = np.full((size, size, 3), 200, np.uint8)
    bg = rng.integers(0, 255, (size, size, 3), dtype=np.uint8)
    alpha = np.zeros((size, size), np.float32)
    alpha[16:48, 8:30] = 1.0
    alpha[16:48, 30:34] = 0.5
    return fg, bg, alpha


class _Always:
    """A stand-in generator whose draws make every probabilistic step happen."""

    def __init__(self, seed=0):
        self.rng = np.random.default_rng(seed)

    def random(self):
        return 0.0

    def __getattr__(self, name):
        return getattr(self.rng, name)


def test_swap_left_right():
    assert swap_left_right("the cat left of the dog, on the right") == "the cat right of the dog, on the left"
    assert swap_left_right("Left-most? leftmost cup") == "Right-most? rightmost cup"
    assert swap_left_right("bright leftover") == "bright leftover"  # whole words only


def test_box_blur_is_a_mean_filter():
    image = np.zeros((9, 9), np.float32)
    image[4, 4] = 9.0
    blurred = box_blur(image, 3)
    np.testing.assert_allclose(blurred[3:6, 3:6], np.ones((3, 3)))
    assert blurred.sum() == pytest.approx(9.0)
    np.testing.assert_array_equal(box_blur(image, 1), image)


def test_composite_without_augmentation_is_exact_over():
    fg, bg, alpha = _scene()
    out = composite_rssn(fg, bg, alpha, np.random.default_rng(0), p_blur=0, p_noise=0)
    expected = alpha[..., None] * fg + (1 - alpha[..., None]) * bg
    assert np.abs(out.astype(np.float32) - expected).max() <= 0.5 + 1e-4


def test_composite_blurs_background_only_and_adds_noise():
    fg, bg, alpha = _scene()
    out = composite_rssn(fg, bg, alpha, _Always(), p_noise=0)
    inside = alpha == 1.0
    np.testing.assert_array_equal(out[inside], fg[inside])  # the foreground stays sharp
    assert out[~inside].astype(np.float32).std() < bg[~inside].astype(np.float32).std() / 2
    noisy = composite_rssn(fg, bg, alpha, _Always(), p_blur=0)
    assert 5 < np.abs(noisy[inside].astype(np.float32) - 200).mean() < 12  # sigma 10, clipped at 255
    denoised_fg = np.full_like(fg, 50)
    swapped = composite_rssn(fg, bg, alpha, _Always(), denoised=(denoised_fg, bg), p_blur=0, p_noise=0)
    assert (swapped[inside] == 50).all()
    with pytest.raises(ValueError, match="must match"):
        composite_rssn(fg, bg[:10], alpha, np.random.default_rng(0))


def test_add_noise_is_clipped():
    out = add_noise(np.full((32, 32), 250, np.uint8), np.random.default_rng(0), sigma=10)
    assert out.max() <= 255 and out.min() >= 0 and out.std() > 3


def test_blur_background_keeps_all_instances_sharp():
    fg, bg, alpha = _scene()
    image = composite_rssn(fg, bg, alpha, np.random.default_rng(0), p_blur=0, p_noise=0)
    out = blur_background(image, alpha, 9)
    np.testing.assert_array_equal(out[alpha == 1], image[alpha == 1])
    assert out[alpha == 0].std() < image[alpha == 0].std()


def test_gfm_crop_prefers_transition_band():
    _, bg, alpha = _scene(128)
    corners = []
    for seed in range(20):
        image, crop = gfm_crop(bg, alpha, _Always(seed), sizes=(640,), small_size=32)
        assert image.shape == (32, 32, 3) and crop.shape == (32, 32)
        corners.append(crop[0, 0])
    assert np.mean([(0 < c < 1) for c in corners]) > 0.5  # top-left drawn from the soft band


def test_composite_augment_flips_text_with_image_and_plugs_into_transform():
    fg, bg, alpha = _scene()
    image = composite_rssn(fg, bg, alpha, np.random.default_rng(0), p_blur=0, p_noise=0)
    augment = CompositeAugment(p_noise=0.0, p_flip=1.0)
    out_image, out_alpha, text = augment(image, alpha, "the box on the left", np.random.default_rng(0))
    np.testing.assert_array_equal(out_image, image[:, ::-1])
    np.testing.assert_array_equal(out_alpha, alpha[:, ::-1])
    assert text == "the box on the right"
    blurred, _, _ = CompositeAugment(p_noise=0, p_flip=0, p_blur=1.0, blur_sizes=(9,))(
        image, alpha, "x", np.random.default_rng(0), union_alpha=alpha
    )
    assert blurred[alpha == 0].std() < image[alpha == 0].std()
    with pytest.raises(ValueError, match="p_flip"):
        CompositeAugment(p_flip=2.0)
    transform = TrainingTransform(resolution=32, alpha_factors=(), augment=augment, text_choice="first")
    row = {
        "image": image,
        "alpha": (alpha * 255).astype(np.uint8),
        "texts": ["the left box"],
        "source": "s",
    }
    out = transform(row)
    assert out["text"] == "the right box"
    assert out["alpha"][0, :, -4:].mean() > out["alpha"][0, :, :4].mean()  # the object moved to the right
