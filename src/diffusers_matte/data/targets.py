# Copyright 2026 The diffusers-matte authors. Licensed under the Apache License, Version 2.0.
"""Training targets derived from a ground-truth alpha matte (paper Sec. 3.2, appendix 6.2).

* :func:`region_map`: the 3-class region representation ``s_GT`` of Eq. (2), by morphology with kernel 15.
* :func:`downsample_region_map`: the same map on the 1/8 latent grid (a cell is certain only if all its pixels are).
* :func:`known_mask` / :func:`transparent_mask`: ``M`` of Eq. (3) and its complement ``M^ = 1 - M`` of Eq. (8).
* :func:`downsample_alpha`: ``alpha^lr_GT`` of Eq. (7) and the alphas at attention resolutions of Eq. (5).
* :func:`trimap_from_mask`: a 0/128/255 trimap from a binary mask (RefCOCO pseudo-alpha, Sec. 4.1).

Class indices of the region map are fixed: ``REGION_BACKGROUND = 0``, ``REGION_FOREGROUND = 1``,
``REGION_TRANSPARENT = 2``.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Sequence, Union

import numpy as np
import scipy.ndimage as ndimage
import torch
import torch.nn.functional as F
from PIL import Image

REGION_BACKGROUND = 0
REGION_FOREGROUND = 1
REGION_TRANSPARENT = 2
NUM_REGIONS = 3
MORPHOLOGY_KERNEL_SIZE = 15  # paper Sec. 4.1 / appendix 6.2: K_mor = 15

AlphaLike = Union[np.ndarray, Image.Image, torch.Tensor]


def alpha_to_numpy(alpha: AlphaLike) -> np.ndarray:
    """Returns ``alpha`` as a float32 ``(H, W)`` array in [0, 1].

    Accepts a PIL image (mode L, or any mode converted to L), a uint8 array (0..255), a float array in [0, 1], or a
    torch tensor of shape ``(H, W)`` or ``(1, H, W)``.
    """
    if isinstance(alpha, Image.Image):
        alpha = np.asarray(alpha.convert("L"))
    elif isinstance(alpha, torch.Tensor):
        alpha = alpha.detach().cpu().numpy()
    alpha = np.asarray(alpha)
    if alpha.ndim == 3 and alpha.shape[0] == 1:
        alpha = alpha[0]
    if alpha.ndim != 2:
        raise ValueError(f"alpha must be a single-channel (H, W) map, got shape {alpha.shape}")
    if alpha.dtype == np.uint8:
        return alpha.astype(np.float32) / 255.0
    if alpha.dtype == bool:
        return alpha.astype(np.float32)
    alpha = alpha.astype(np.float32)
    if alpha.size and (alpha.min() < -1e-6 or alpha.max() > 1 + 1e-6):
        raise ValueError(
            f"float alpha must lie in [0, 1], got range [{alpha.min():.3f}, {alpha.max():.3f}]; "
            "pass uint8 for 0..255 alphas"
        )
    return alpha


@lru_cache(maxsize=16)
def elliptical_kernel(size: int) -> np.ndarray:
    """A ``size x size`` boolean ellipse (a disk), like OpenCV's ``MORPH_ELLIPSE`` structuring element."""
    if size < 1:
        raise ValueError(f"kernel size must be >= 1, got {size}")
    centre = (size - 1) / 2.0
    radius = size / 2.0
    y, x = np.mgrid[:size, :size]
    return ((x - centre) ** 2 + (y - centre) ** 2) <= radius**2


def _erode(mask: np.ndarray, kernel_size: int) -> np.ndarray:
    if kernel_size <= 1:
        return mask
    # border_value=1: an object touching the image border is not eroded from outside the image.
    return ndimage.binary_erosion(mask, structure=elliptical_kernel(kernel_size), border_value=1)


def region_map(
    alpha: AlphaLike,
    kernel_size: int = MORPHOLOGY_KERNEL_SIZE,
    tolerance: float = 1.0 / 255.0,
) -> np.ndarray:
    """The 3-class region map ``s_GT`` of Eq. (2) at the resolution of ``alpha``.

    Foreground is ``alpha >= 1 - tolerance`` eroded by an elliptical kernel of ``kernel_size``; background is
    ``alpha <= tolerance`` eroded the same way; every other pixel (the soft band and the margin the erosion opens
    around hard edges) is transparent. Returns a uint8 ``(H, W)`` array of ``REGION_*`` indices.
    """
    alpha = alpha_to_numpy(alpha)
    foreground = _erode(alpha >= 1.0 - tolerance, kernel_size)
    background = _erode(alpha <= tolerance, kernel_size)
    regions = np.full(alpha.shape, REGION_TRANSPARENT, dtype=np.uint8)
    regions[foreground] = REGION_FOREGROUND
    regions[background] = REGION_BACKGROUND
    return regions


def downsample_region_map(regions: np.ndarray, factor: int = 8) -> np.ndarray:
    """Reduces a region map by ``factor`` (the 1/8 latent grid of Sec. 3.2.1).

    A cell keeps the foreground or background class only if all of its pixels have it; any other cell is
    transparent, so ``M`` never includes a cell that touches the transparent band.
    """
    height, width = regions.shape
    if height % factor or width % factor:
        raise ValueError(f"region map size {height}x{width} is not divisible by factor {factor}")
    blocks = regions.reshape(height // factor, factor, width // factor, factor)
    low, high = blocks.min(axis=(1, 3)), blocks.max(axis=(1, 3))
    return np.where(low == high, low, REGION_TRANSPARENT).astype(np.uint8)


def known_mask(regions: np.ndarray) -> np.ndarray:
    """``M`` of Eq. (3): 1 on foreground and background cells, 0 on transparent ones (float32)."""
    return (regions != REGION_TRANSPARENT).astype(np.float32)


def transparent_mask(regions: np.ndarray) -> np.ndarray:
    """``M^ := 1 - M`` of Eq. (8): 1 where the region map is transparent (float32)."""
    return 1.0 - known_mask(regions)


def region_one_hot(regions: np.ndarray) -> np.ndarray:
    """``s_GT`` of Eq. (2) as a float32 ``(3, H, W)`` one-hot array (channels in ``REGION_*`` order)."""
    return np.eye(NUM_REGIONS, dtype=np.float32)[regions].transpose(2, 0, 1).copy()


def downsample_alpha(alpha: torch.Tensor, size: Union[int, Sequence[int]], antialias: bool = True) -> torch.Tensor:
    """Bilinear down-sampling of an alpha tensor ``(..., H, W)`` to ``size`` (Eqs. (5) and (7)).

    The paper down-samples with bilinear interpolation; ``antialias=True`` (the default) averages over the whole
    footprint, like PIL's bilinear resize, so thin structures keep their share of coverage instead of aliasing.
    """
    if isinstance(size, int):
        size = (size, size)
    shape = alpha.shape
    if alpha.ndim < 2:
        raise ValueError(f"alpha must have at least 2 dimensions (H, W), got shape {tuple(shape)}")
    flat = alpha.reshape(-1, 1, shape[-2], shape[-1]).float()
    out = F.interpolate(
        flat,
        size=tuple(size),
        mode="bilinear",
        align_corners=False,
        antialias=antialias,
    )
    return out.clamp(0.0, 1.0).reshape(*shape[:-2], *size)


def trimap_from_mask(mask: np.ndarray, kernel_size: int = MORPHOLOGY_KERNEL_SIZE) -> np.ndarray:
    """A uint8 trimap (0 background, 128 unknown, 255 foreground) from a binary mask by erosion and dilation.

    Used for RefCOCO pseudo-alphas (Sec. 4.1): the unknown band is the mask boundary widened by ``kernel_size``.
    """
    mask = np.asarray(mask) > 0
    foreground = _erode(mask, kernel_size)
    background = _erode(~mask, kernel_size)
    trimap = np.full(mask.shape, 128, dtype=np.uint8)
    trimap[foreground] = 255
    trimap[background] = 0
    return trimap
