# Copyright 2026 The diffusers-matte authors. Licensed under the Apache License, Version 2.0.
"""GFM's composition augmentation (RSSN; Li et al., 2022), which TDM applies to RefMatte composites (appendix 6.2).

What GFM's code does (JizhiziLi/GFM core/util.py, core/data.py), and nothing more: no JPEG, no colour jitter.

1. Denoising (p = 0.5): swap in offline BM3D-denoised foreground *and* background (only if the caller has them).
2. Sharpness (p = 0.5): box-blur the *background only* with a square mean kernel of size 20, 30, 40, 50 or 60.
3. Composite ``I = alpha * F + (1 - alpha) * B``.
4. Noise (p = 0.5): add Gaussian noise with sigma 10 (pixel units). GFM casts to uint8 without clipping, so values
   wrap around; we clip instead.
5. Geometry: a random square crop (640, 960 or 1280, or 320 when the image is smaller) whose top-left corner lies in
   the transition band with p = 0.5, then a horizontal flip with p = 0.5. TDM resizes to 512 afterwards.

RefMatte ships composites only, so step 2 can only be approximated with the *union* of all instance alphas of the
image: ``I' = A * I + (1 - A) * blur(I)`` (:func:`blur_background`). With a single instance's alpha the blur would
leave just the referred object sharp, a cue that tells the model the answer; :class:`CompositeAugment` therefore only
blurs when given the union. A flip mirrors left and right, so the text's "left" and "right" are swapped with it.
"""

from __future__ import annotations

import re
from typing import Optional, Sequence, Tuple

import numpy as np
import scipy.ndimage as ndimage

BLUR_SIZES = (20, 30, 40, 50, 60)
CROP_SIZES = (640, 960, 1280)
NOISE_SIGMA = 10.0

_LEFT_RIGHT = re.compile(r"\b(left|right|leftmost|rightmost|Left|Right)\b")
_SWAP = {
    "left": "right",
    "right": "left",
    "leftmost": "rightmost",
    "rightmost": "leftmost",
    "Left": "Right",
}
_SWAP["Right"] = "Left"


def swap_left_right(text: str) -> str:
    """Swaps the words left/right (and leftmost/rightmost) so an expression stays true after a horizontal flip."""
    return _LEFT_RIGHT.sub(lambda match: _SWAP[match.group(1)], text)


def box_blur(image: np.ndarray, size: int) -> np.ndarray:
    """Square mean filter of ``size`` over each channel (OpenCV ``blur``, reflect-101 border)."""
    size = int(size)
    if size <= 1:
        return image.astype(np.float32)
    sizes = (size, size) + (1,) * (image.ndim - 2)
    return ndimage.uniform_filter(image.astype(np.float32), size=sizes, mode="mirror")


def add_noise(image: np.ndarray, rng: np.random.Generator, sigma: float = NOISE_SIGMA) -> np.ndarray:
    """Adds i.i.d. Gaussian noise (pixel units) and clips to 0..255 (GFM wraps around instead)."""
    noisy = image.astype(np.float32) + rng.standard_normal(image.shape, dtype=np.float32) * sigma
    return np.clip(noisy, 0, 255)


def composite_rssn(
    foreground: np.ndarray,
    background: np.ndarray,
    alpha: np.ndarray,
    rng: np.random.Generator,
    denoised: Optional[Tuple[np.ndarray, np.ndarray]] = None,
    p_denoise: float = 0.5,
    p_blur: float = 0.5,
    blur_sizes: Sequence[int] = BLUR_SIZES,
    p_noise: float = 0.5,
    noise_sigma: float = NOISE_SIGMA,
) -> np.ndarray:
    """RSSN composite of ``foreground`` over ``background`` (uint8 RGB, same size) with float ``alpha`` in [0, 1].

    ``denoised`` is an optional (foreground, background) pair of BM3D-denoised copies (GFM makes them offline).
    Returns the uint8 composite.
    """
    if foreground.shape != background.shape or foreground.shape[:2] != alpha.shape:
        raise ValueError(
            f"foreground {foreground.shape}, background {background.shape} and alpha {alpha.shape} must match"
        )
    if denoised is not None and rng.random() < p_denoise:
        foreground, background = denoised
    background = background.astype(np.float32)
    if rng.random() < p_blur:
        background = box_blur(background, int(rng.choice(blur_sizes)))
    a = alpha.astype(np.float32)[..., None]
    image = a * foreground.astype(np.float32) + (1.0 - a) * background
    if rng.random() < p_noise:
        image = add_noise(image, rng, noise_sigma)
    return np.clip(image + 0.5, 0, 255).astype(np.uint8)


def blur_background(image: np.ndarray, union_alpha: np.ndarray, size: int) -> np.ndarray:
    """Approximate background blur of a composite: ``A * I + (1 - A) * blur(I)``, ``A`` = union of all instances."""
    a = np.clip(union_alpha.astype(np.float32), 0, 1)[..., None]
    blurred = box_blur(image, size)
    return np.clip(a * image.astype(np.float32) + (1.0 - a) * blurred + 0.5, 0, 255).astype(np.uint8)


def gfm_crop(
    image: np.ndarray,
    alpha: np.ndarray,
    rng: np.random.Generator,
    sizes: Sequence[int] = CROP_SIZES,
    small_size: int = 320,
    p_transition: float = 0.5,
) -> Tuple[np.ndarray, np.ndarray]:
    """GFM's random square crop: the top-left corner is drawn from the transition band with ``p_transition``.

    A crop changes what absolute-position expressions refer to, so it suits caption-level sets (P3M-10k, AM-2k)
    better than referring ones.
    """
    height, width = alpha.shape
    size = int(rng.choice(sizes))
    if size >= min(height, width):
        size = small_size
    size = min(size, height, width)
    max_y, max_x = height - size, width - size
    band = np.argwhere((alpha > 0.01) & (alpha < 0.99))
    band = band[(band[:, 0] <= max_y) & (band[:, 1] <= max_x)]
    if len(band) and rng.random() < p_transition:
        y, x = band[int(rng.integers(len(band)))]
    else:
        y, x = int(rng.integers(max_y + 1)), int(rng.integers(max_x + 1))
    return image[y : y + size, x : x + size], alpha[y : y + size, x : x + size]


class CompositeAugment:
    """RSSN-style augmentation for rows of composite sets, in the ``augment`` form of ``TrainingTransform``.

    Applies noise (p = ``p_noise``) and a horizontal flip with left/right swapped in the text (p = ``p_flip``).
    Background blur needs the union of all instance alphas of the image, so it runs only when ``p_blur > 0`` and
    the caller passes ``union_alpha``; crops are off by default (they break absolute-position texts).
    """

    def __init__(
        self,
        p_noise: float = 0.5,
        noise_sigma: float = NOISE_SIGMA,
        p_flip: float = 0.5,
        p_blur: float = 0.0,
        blur_sizes: Sequence[int] = BLUR_SIZES,
        crop: bool = False,
    ):
        for name, p in (("p_noise", p_noise), ("p_flip", p_flip), ("p_blur", p_blur)):
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"{name} must lie in [0, 1], got {p}")
        self.p_noise, self.noise_sigma, self.p_flip = p_noise, noise_sigma, p_flip
        self.p_blur, self.blur_sizes, self.crop = p_blur, tuple(blur_sizes), crop

    def __call__(
        self,
        image: np.ndarray,
        alpha: np.ndarray,
        text: str,
        rng: np.random.Generator,
        union_alpha: Optional[np.ndarray] = None,
    ) -> Tuple[np.ndarray, np.ndarray, str]:
        if union_alpha is not None and rng.random() < self.p_blur:
            image = blur_background(image, np.maximum(union_alpha, alpha), int(rng.choice(self.blur_sizes)))
        if rng.random() < self.p_noise:
            image = np.clip(add_noise(image, rng, self.noise_sigma) + 0.5, 0, 255).astype(np.uint8)
        if self.crop:
            image, alpha = gfm_crop(image, alpha, rng)
        if rng.random() < self.p_flip:
            image, alpha, text = (
                image[:, ::-1].copy(),
                alpha[:, ::-1].copy(),
                swap_left_right(text),
            )
        return image, alpha, text
