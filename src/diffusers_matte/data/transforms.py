# Copyright 2026 The diffusers-matte authors. Licensed under the Apache License, Version 2.0.
"""Turns a dataset row (the schema of :mod:`diffusers_matte.data`) into training tensors.

The paper resizes every image to 512x512 in all stages (appendix 6.2) and trains on one randomly chosen expression
per instance (Sec. 4.1). The resize is the pipeline's own preprocessing (`image_processor.prepare_pixels`, square, torch
antialiased bilinear), so training and inference see the same pixels for the same image. The targets follow Sec. 3.2: region map and masks on the 1/8 grid, down-sampled alphas.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from PIL import Image

from .targets import (
    MORPHOLOGY_KERNEL_SIZE,
    downsample_alpha,
    downsample_region_map,
    known_mask,
    region_map,
)

# augment(image uint8 HxWx3, alpha float32 HxW, text, rng) -> (image, alpha, text)
AugmentFn = Callable[
    [np.ndarray, np.ndarray, str, np.random.Generator],
    Tuple[np.ndarray, np.ndarray, str],
]


def _as_pil(value: Any, mode: str) -> Image.Image:
    # One reader for every image of the project: EXIF orientation applied, modes converted by what they mean.
    from ..pipelines.soft_grounding.image_processor import exif_transpose, open_image, to_rgb_pil

    if isinstance(value, Mapping) and (value.get("bytes") or value.get("path")):
        import io

        value = open_image(io.BytesIO(value["bytes"]) if value.get("bytes") else value["path"], max_megapixels=None)
    if isinstance(value, np.ndarray):
        value = Image.fromarray(value)
    if isinstance(value, Image.Image):
        return to_rgb_pil(value) if mode == "RGB" else exif_transpose(value).convert(mode)
    raise TypeError(f"expected a PIL image, a numpy array or a datasets image dict, got {type(value).__name__}")


class TrainingTransform:
    """Callable that maps one row to a dict of tensors for the training scripts.

    Output keys (``R = resolution``, ``r = R // latent_factor``):

    * ``pixel_values``: float32 ``(3, R, R)`` in [-1, 1];
    * ``alpha``: float32 ``(1, R, R)`` in [0, 1];
    * ``alpha_lr``: float32 ``(1, r, r)``, ``alpha^lr_GT`` of Eq. (7);
    * ``alpha_down{f}`` for each extra factor ``f`` in ``alpha_factors`` (e.g. 16, 32 for the attention
      resolutions of Eq. (5)): float32 ``(1, R/f, R/f)``;
    * ``region_map``: int64 ``(r, r)`` with classes 0 background, 1 foreground, 2 transparent (Eq. (2));
    * ``mask``: float32 ``(1, r, r)``, ``M`` of Eq. (3); ``transparent_mask``: ``1 - M`` of Eq. (8);
    * ``text``: the chosen expression (str); ``source``: the row's source (str).

    Args:
        resolution: square training size (512 in the paper).
        latent_factor: VAE down-sampling factor (8 for Stable Diffusion).
        alpha_factors: extra down-sampling factors for ``alpha_down{f}``.
        kernel_size: morphology kernel of the region map, applied at ``resolution`` (15 in the paper).
        text_choice: ``"random"`` picks one of ``row["texts"]`` (training), ``"first"`` the first one.
        augment: optional augmentation applied before resizing, see :mod:`diffusers_matte.data.augment`; or a
            mapping ``{source: augmentation}`` applied by the row's ``source`` (sources not in it are left as
            they are). An augmentation that takes a ``union_alpha`` keyword (:class:`CompositeAugment`) gets the
            union of the image's instance alphas when the caller passes one.
        seed: seed of the transform's random generator (text choice and augmentation). With several DataLoader
            workers call :meth:`reseed` from ``worker_init_fn`` so workers do not repeat each other.
    """

    def __init__(
        self,
        resolution: int = 512,
        latent_factor: int = 8,
        alpha_factors: Sequence[int] = (16, 32),
        kernel_size: int = MORPHOLOGY_KERNEL_SIZE,
        text_choice: str = "random",
        augment: Optional[Union[AugmentFn, Mapping[str, AugmentFn]]] = None,
        seed: int = 0,
    ):
        if resolution % latent_factor:
            raise ValueError(f"resolution {resolution} must be divisible by latent_factor {latent_factor}")
        for factor in alpha_factors:
            if resolution % factor:
                raise ValueError(f"resolution {resolution} must be divisible by every alpha factor, got {factor}")
        if text_choice not in ("random", "first"):
            raise ValueError(f"text_choice must be 'random' or 'first', got {text_choice!r}")
        self.resolution = resolution
        self.latent_factor = latent_factor
        self.alpha_factors = tuple(alpha_factors)
        self.kernel_size = kernel_size
        self.text_choice = text_choice
        self.augment = augment
        self.seed = seed
        self.rng = np.random.default_rng(seed)

    def reseed(self, worker_id: int) -> None:
        """Gives DataLoader worker ``worker_id`` its own random stream."""
        self.rng = np.random.default_rng([self.seed, worker_id])

    def choose_text(self, texts: Sequence[str]) -> str:
        if not texts:
            return ""
        if self.text_choice == "first":
            return texts[0]
        return texts[int(self.rng.integers(len(texts)))]

    def augment_for(self, source: str) -> Optional[AugmentFn]:
        """The augmentation rows of `source` get (None: none)."""
        if isinstance(self.augment, Mapping):
            return self.augment.get(source)
        return self.augment

    def __call__(self, row: Mapping[str, Any], union_alpha: Optional[np.ndarray] = None) -> Dict[str, Any]:
        """`union_alpha`: float (H, W) union of all instance alphas of the row's image, for background blur."""
        image = np.asarray(_as_pil(row["image"], "RGB"))
        alpha = np.asarray(_as_pil(row["alpha"], "L"), dtype=np.float32) / 255.0
        if image.shape[:2] != alpha.shape:
            raise ValueError(
                f"image {image.shape[:2]} and alpha {alpha.shape} of instance {row.get('instance_id')!r} differ in size"
            )
        text = self.choose_text(list(row.get("texts") or []))
        augment = self.augment_for(row.get("source", ""))
        if augment is not None:
            if union_alpha is not None and hasattr(augment, "p_blur"):
                image, alpha, text = augment(image, alpha, text, self.rng, union_alpha=union_alpha)
            else:
                image, alpha, text = augment(image, alpha, text, self.rng)
        return self.from_arrays(image, alpha, text, source=row.get("source", ""))

    def from_arrays(self, image: np.ndarray, alpha: np.ndarray, text: str = "", source: str = "") -> Dict[str, Any]:
        """Builds the tensors from an RGB uint8 image and a float alpha in [0, 1] of the same size."""
        from ..pipelines.soft_grounding.image_processor import prepare_pixels, resize

        size = (self.resolution, self.resolution)
        # The pipeline's preprocessing (one function for training, evaluation and inference), with the paper's
        # square resize; the alpha is resized by the same filter to the same grid.
        image = torch.from_numpy(np.array(image, dtype=np.uint8)).permute(2, 0, 1)[None].float() / 255.0
        pixel_values = prepare_pixels(image, self.resolution, keep_aspect_ratio=False)[0][0]
        alpha_t = resize(torch.from_numpy(np.array(alpha, dtype=np.float32))[None, None], size)[0]
        alpha_t = alpha_t.clamp(0.0, 1.0)
        alpha_np = alpha_t[0].numpy()
        regions = downsample_region_map(region_map(alpha_np, self.kernel_size), self.latent_factor)
        latent = self.resolution // self.latent_factor
        out = {
            "pixel_values": pixel_values,
            "alpha": alpha_t,
            "alpha_lr": downsample_alpha(alpha_t, latent),
            "region_map": torch.from_numpy(regions.astype(np.int64)),
            "known_mask": torch.from_numpy(known_mask(regions))[None],
            "text": text,
            "source": source,
        }
        out["transparent_mask"] = 1.0 - out["known_mask"]
        for factor in self.alpha_factors:
            out[f"alpha_down{factor}"] = downsample_alpha(alpha_t, self.resolution // factor)
        return out


def collate_training_examples(examples: List[Dict[str, Any]]) -> Dict[str, Any]:
    """Stacks tensors and keeps strings as lists (``torch.utils.data.DataLoader(collate_fn=...)``)."""
    if not examples:
        raise ValueError("cannot collate an empty list of examples")
    batch: Dict[str, Any] = {}
    for key, value in examples[0].items():
        values = [example[key] for example in examples]
        batch[key] = torch.stack(values) if isinstance(value, torch.Tensor) else values
    return batch
