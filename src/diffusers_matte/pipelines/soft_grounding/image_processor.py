# Copyright 2026 The diffusers-matte authors. Licensed under the Apache License, Version 2.0.
"""Image handling of the soft-grounding pipeline: loading, resize and pad, unpad, output formats, cut-outs.

Everything works on float tensors in [0, 1] laid out `(N, C, H, W)`; the pipeline maps pixels to [-1, 1] for the
VAE. This module only imports installed libraries, so it can be copied next to an exported pipeline file.
"""

import math
import os
import warnings

import numpy as np
import PIL.Image
import PIL.ImageOps
import torch
import torch.nn.functional as F

# Reading images as people see them ------------------------------------------------------------------------------

#: The limit `open_image` applies by default: large enough for the photos of today's phones (up to about 50
#: megapixels), small enough that a tiny file that decodes to gigabytes (a "decompression bomb") is refused first.
DEFAULT_MAX_MEGAPIXELS = 50.0
_EXIF_ORIENTATION = 0x0112
_TIFF_BITS_PER_SAMPLE, _TIFF_SAMPLE_FORMAT, _TIFF_MAX_SAMPLE_VALUE = 258, 339, 281
_TIFF_UNSIGNED, _TIFF_SIGNED = 1, 2

# PIL modes taken as they are (the value: what they become); any other mode PIL can turn into RGB (CMYK, YCbCr,
# HSV, premultiplied RGBa, ...) is converted to RGB, "1" (bilevel) to "L". Modes "I" and "F" have rules of their
# own (see `load_image`).
_PIL_MODES = {
    "RGB": "RGB",
    "RGBA": "RGB",
    "RGBX": "RGB",
    "P": "RGB",
    "PA": "RGB",
    "L": "L",
    "LA": "L",
    "1": "L",
    "I;16": "I;16",
    "I;16B": "I;16",
    "I;16L": "I;16",
    "I;16N": "I;16",
}
_CHANNELS = {1: "grayscale", 2: "grayscale with alpha", 3: "RGB", 4: "RGBA"}


class ImageTooLargeError(ValueError):
    """An image with more pixels than the reader was allowed to decode (see `check_image_size`)."""


def check_image_size(size: tuple[int, int], max_megapixels: float | None, name: str = "the image") -> None:
    """Raise `ImageTooLargeError` when an image of `size = (width, height)` has more than `max_megapixels`
    million pixels (`None`: no limit). The message names the image, its size and the limit."""
    if max_megapixels is None:
        return
    if max_megapixels <= 0:
        raise ValueError(f"`max_megapixels` must be positive or None, got {max_megapixels}.")
    width, height = size
    megapixels = width * height / 1e6
    if megapixels > max_megapixels:
        raise ImageTooLargeError(
            f"{name} is {width}x{height} ({megapixels:.1f} megapixels), above the limit of {max_megapixels:g} "
            f"megapixels"
        )


def exif_transpose(image: PIL.Image.Image) -> PIL.Image.Image:
    """The image as it is displayed: rotated / mirrored as its EXIF Orientation tag says (phone photos are often
    stored sideways with such a tag). Images without the tag, or already transposed, are returned as they are."""
    if image.getexif().get(_EXIF_ORIENTATION, 1) in (None, 1):
        return image
    return PIL.ImageOps.exif_transpose(image)


def open_image(path: str | os.PathLike, max_megapixels: float | None = DEFAULT_MAX_MEGAPIXELS) -> PIL.Image.Image:
    """Open an image file as people see it, the one reader of the command line, the demo and the data loaders.

    The size is read from the header and checked against `max_megapixels` (`check_image_size`) before any pixel
    is decoded, so a small file that would decode to gigabytes is refused at once; PIL's own decompression-bomb
    error (above about 179 megapixels) still applies. The pixels are then loaded (the file is closed) and the
    EXIF orientation is applied. The mode is kept: `load_image` converts it. A multi-frame file (animated GIF,
    multi-page TIFF) gives its first frame.

    Raises:
        ImageTooLargeError: more than `max_megapixels` million pixels.
        ValueError / OSError: not an image, truncated, or above PIL's decompression-bomb limit (the message of
            `PIL.Image.DecompressionBombError`, a `ValueError` here).
    """
    name = repr(str(path))
    try:
        with warnings.catch_warnings():
            # The size is checked here; PIL's warning about it would only add a second, longer message.
            warnings.simplefilter("ignore", PIL.Image.DecompressionBombWarning)
            with PIL.Image.open(path) as image:
                check_image_size(image.size, max_megapixels, name)
                image.load()
                tiff_tags = _tiff_sample_tags(image)
                image = exif_transpose(image)
    except PIL.Image.DecompressionBombError as error:
        raise ImageTooLargeError(f"{name}: {error}") from None
    if tiff_tags:
        image.info["tiff_sample_tags"] = tiff_tags
    return image


def _tiff_sample_tags(image: PIL.Image.Image) -> dict[int, object]:
    """The TIFF tags that say what a 32-bit integer sample means (kept after `load`, which may drop `tag_v2`)."""
    tags = getattr(image, "tag_v2", None)
    if tags is None or image.mode != "I":
        return {}
    return {
        key: tags[key] for key in (_TIFF_BITS_PER_SAMPLE, _TIFF_SAMPLE_FORMAT, _TIFF_MAX_SAMPLE_VALUE) if key in tags
    }


def _first(value):
    return value[0] if isinstance(value, (tuple, list)) else value


def _int32_to_unit(image: PIL.Image.Image, tags: dict[int, object], index: int) -> np.ndarray:
    """Mode "I" (32-bit integer) -> float32 in [0, 1], scaled by what the file means.

    A 32-bit TIFF says it: white is its MaxSampleValue tag, or by the TIFF rule 2**32 - 1 (unsigned samples) /
    2**31 - 1 (signed ones). Other "I" images (PIL decodes 16-bit PGM/PPM files and some PNGs to "I" with values
    scaled to 0..65535, and `Image.convert("I;16")` keeps that range) are taken on the 16-bit range.
    """
    array = np.asarray(image)
    if tags and _first(tags.get(_TIFF_BITS_PER_SAMPLE)) == 32:
        unsigned = _first(tags.get(_TIFF_SAMPLE_FORMAT, _TIFF_UNSIGNED)) == _TIFF_UNSIGNED
        if unsigned:
            array = array.view(np.uint32)  # PIL holds unsigned 32-bit samples in its signed mode "I"
        elif array.min() < 0:
            raise _image_error(index, "is a signed 32-bit integer TIFF with negative values (no colour meaning)")
        white = _first(tags.get(_TIFF_MAX_SAMPLE_VALUE)) or (2**32 - 1 if unsigned else 2**31 - 1)
        return np.clip(array.astype(np.float64) / float(white), 0.0, 1.0).astype(np.float32)
    if array.min() < 0 or array.max() > 65535:
        raise _image_error(
            index,
            f"is a 32-bit integer image (PIL mode 'I') with values in [{array.min()}, {array.max()}], outside the "
            "16-bit range it is read on; save it as 8 or 16 bits, or pass a float array in [0, 1]",
        )
    return array.astype(np.float32) / 65535.0


def _float32_to_unit(image: PIL.Image.Image, index: int) -> np.ndarray:
    """Mode "F" (32-bit float) -> float32 in [0, 1]: values in [0, 1] are taken as they are, values up to 255 are
    read on PIL's 8-bit scale (what `Image.convert("F")` gives); anything else has no colour meaning."""
    array = np.array(image, dtype=np.float32)
    if not np.isfinite(array).all() or array.min() < 0 or array.max() > 255:
        raise _image_error(
            index,
            f"is a float image (PIL mode 'F') with values in [{np.nanmin(array):g}, {np.nanmax(array):g}]; expected "
            "values in [0, 1] (or PIL's 0..255 scale)",
        )
    return array if array.max() <= 1.0 else array / 255.0


def _image_error(index: int, problem: str) -> ValueError:
    return ValueError(
        f"`image[{index}]` {problem}. Expected a PIL image (RGB, RGBA, grayscale, 16-bit, CMYK, ...), a numpy "
        "array (H, W[, C]) or a torch tensor ([N,] C, H, W) with C in 1..4, of dtype uint8, uint16 or float in "
        "[0, 1]."
    )


def _pil_to_numpy(image: PIL.Image.Image, index: int) -> np.ndarray:
    tags = image.info.get("tiff_sample_tags") or _tiff_sample_tags(image)
    image = exif_transpose(image)
    if image.mode == "I":
        return _int32_to_unit(image, tags, index)
    if image.mode == "F":
        return _float32_to_unit(image, index)
    target = _PIL_MODES.get(image.mode)
    if target == "I;16":
        return np.asarray(image).astype(np.uint16)
    try:
        return np.asarray(image.convert(target or "RGB"))
    except (ValueError, OSError) as error:
        raise _image_error(index, f"has the PIL mode {image.mode!r}, which PIL cannot convert to RGB ({error})")


def _to_unit_float(array: np.ndarray | torch.Tensor, index: int) -> torch.Tensor:
    """uint8 / uint16 / float array or tensor -> float32 tensor in [0, 1]."""
    if isinstance(array, np.ndarray):
        if array.dtype == np.uint16:
            array = array.astype(np.float32) / 65535.0
        elif array.dtype == np.uint8:
            array = array.astype(np.float32) / 255.0
        elif not np.issubdtype(array.dtype, np.floating):
            raise _image_error(index, f"has the unsupported dtype {array.dtype}")
        return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))
    if array.dtype == torch.uint8:
        return array.float() / 255.0
    if array.dtype == torch.uint16:
        return array.float() / 65535.0
    if not array.is_floating_point():
        raise _image_error(index, f"has the unsupported dtype {array.dtype}")
    return array.float()


def _drop_alpha(image: torch.Tensor, index: int) -> torch.Tensor:
    """(N, C, H, W) with C in 1..4 -> (N, 3, H, W): grayscale repeated, alpha channels dropped."""
    channels = image.shape[1]
    if channels not in _CHANNELS:
        raise _image_error(index, f"has {channels} channels")
    colour = image[:, :3] if channels >= 3 else image[:, :1].expand(-1, 3, -1, -1)
    if not torch.isfinite(colour).all() or colour.min() < 0 or colour.max() > 1:
        raise _image_error(index, "has values outside [0, 1]")
    return colour


def load_image(image, index: int = 0) -> torch.Tensor:
    """Convert one input (PIL, numpy `(H, W[, C])` / `(N, H, W, C)`, torch `(C, H, W)` / `(N, C, H, W)`) to a
    float32 tensor `(N, 3, H, W)` in [0, 1]. `index` only names the input in error messages.

    PIL images are read as people see them: the EXIF orientation is applied (a phone photo stored sideways comes
    out upright), any mode PIL converts to RGB is converted (CMYK, bilevel "1", palette, ...), 16-bit images keep
    their precision, 32-bit integer TIFFs are scaled by their white level (see `_int32_to_unit`) and float "F"
    images are read in [0, 1] (or on PIL's 0..255 scale). numpy arrays and torch tensors are taken as they are:
    no orientation, uint8 / uint16 / float in [0, 1], grayscale repeated, alpha channels dropped.

    Raises:
        ValueError: an unsupported type, mode, dtype, shape or value range, or an empty image (no pixels).
    """
    if isinstance(image, PIL.Image.Image):
        image = _pil_to_numpy(image, index)
    shape = tuple(getattr(image, "shape", ()))
    if isinstance(image, np.ndarray):
        if image.ndim == 2:
            image = image[..., None]
        if image.ndim == 3:
            image = image[None]
        if image.ndim != 4:
            raise _image_error(index, f"has the unsupported shape {image.shape}")
        _check_not_empty(image.shape[:3], shape, index)
        return _drop_alpha(_to_unit_float(image, index).permute(0, 3, 1, 2), index)
    if isinstance(image, torch.Tensor):
        if image.ndim == 2:
            image = image[None]
        if image.ndim == 3:
            image = image[None]
        if image.ndim != 4:
            raise _image_error(index, f"has the unsupported shape {tuple(image.shape)}")
        _check_not_empty((image.shape[0], *image.shape[2:]), shape, index)
        return _drop_alpha(_to_unit_float(image.detach().cpu(), index), index)
    raise _image_error(index, f"has the unsupported type {type(image).__name__}")


def _check_not_empty(sizes: tuple[int, ...], shape: tuple[int, ...], index: int) -> None:
    """(N, H, W) of a batch: refuse an empty batch or an image without pixels, before torch sees it."""
    if min(sizes) == 0:
        raise _image_error(index, f"is empty (shape {shape}): an image needs at least one pixel")


def to_rgb_pil(image) -> PIL.Image.Image:
    """Any input `load_image` takes (one image) -> an 8-bit RGB PIL image, read by the same rules (EXIF
    orientation, modes). For code that works on 8-bit RGB, e.g. the training transforms and the evaluation."""
    if isinstance(image, PIL.Image.Image) and image.mode == "RGB" and image.getexif().get(_EXIF_ORIENTATION, 1) == 1:
        return image  # already what it would become
    tensor = load_image(image)
    if tensor.shape[0] != 1:
        raise ValueError(f"`image` must hold one image, got a batch of {tensor.shape[0]}.")
    array = (tensor[0].permute(1, 2, 0).numpy() * 255.0 + 0.5).astype(np.uint8)
    return PIL.Image.fromarray(array, mode="RGB")


def load_images(image) -> list[torch.Tensor]:
    """A single input or a list of them -> a list of `(1, 3, H, W)` tensors in [0, 1], one per image (sizes may
    differ). Batched numpy or torch inputs are split into single images."""
    inputs = image if isinstance(image, (list, tuple)) else [image]
    if len(inputs) == 0:
        raise ValueError("`image` is an empty list; give at least one image.")
    images = []
    for index, item in enumerate(inputs):
        images.extend(load_image(item, index).split(1))
    return images


def prepare_pixels(
    image: torch.Tensor,
    processing_resolution: int = 512,
    keep_aspect_ratio: bool = True,
    pad_multiple: int = 1,
    resample: str = "bilinear",
) -> tuple[torch.Tensor, tuple[int, int], tuple[int, int]]:
    """The one preprocessing of training, evaluation and inference: resize, normalise, pad.

    `(N, C, H, W)` in [0, 1] -> `(pixels, padding, original_size)`, pixels in [-1, 1] (what the VAE takes),
    `padding = (pad_h, pad_w)` added on the bottom and right.

    - `processing_resolution`: with `keep_aspect_ratio`, the size of the longest edge (the other edge follows the
      aspect ratio, rounded); without it, the image becomes `processing_resolution` x `processing_resolution`,
      which is what the paper does in all training stages and in its 512x512 evaluation (appendix 6.2, Sec. 4.3).
      0 keeps the size.
    - Resizing is torch's `interpolate` with `resample` ("bilinear" by default), antialiased when shrinking, so a
      training batch and a pipeline call see the same pixels for the same image and size. The training alphas
      are resized by `resize` with the same size and filter, so the targets stay aligned with the pixels.
    - `pad_multiple`: replicate-padding to a multiple of it (the pipeline pads to the UNet's total down-sampling,
      64 for Stable Diffusion); 1 pads nothing.
    """
    original_size = tuple(image.shape[-2:])
    if processing_resolution > 0:
        height, width = original_size
        if keep_aspect_ratio:
            scale = processing_resolution / max(height, width)
            size = (max(1, round(height * scale)), max(1, round(width * scale)))
        else:
            size = (processing_resolution, processing_resolution)
        image = resize(image, size, resample)
    image = image * 2.0 - 1.0
    pad_h, pad_w = (-image.shape[-2]) % pad_multiple, (-image.shape[-1]) % pad_multiple
    if pad_h or pad_w:
        image = F.pad(image, (0, pad_w, 0, pad_h), mode="replicate")
    return image, (pad_h, pad_w), original_size


class SoftGroundingImageProcessor:
    """Resize, pad and unpad images for the soft-grounding pipeline, and format its outputs.

    Args:
        pad_multiple (`int`): sizes are padded to a multiple of this (the VAE's scale factor times the UNet's
            down-sampling factor), so every UNet level sees a whole grid.
    """

    def __init__(self, pad_multiple: int = 64):
        self.pad_multiple = pad_multiple

    def preprocess(
        self,
        image: torch.Tensor,
        processing_resolution: int = 512,
        resample: str = "bilinear",
        keep_aspect_ratio: bool = True,
    ) -> tuple[torch.Tensor, tuple[int, int], tuple[int, int]]:
        """`(N, 3, H, W)` in [0, 1] -> pixels in [-1, 1], longest edge resized to `processing_resolution` (0: keep
        the size; the aspect ratio is kept unless `keep_aspect_ratio=False`, which gives the paper's square
        resize), replicate-padded on the bottom and right to a multiple of `pad_multiple`. Returns
        `(pixels, padding, original_size)` with `padding = (pad_h, pad_w)`. This is `prepare_pixels`, the function
        the training transform uses too.
        """
        return prepare_pixels(image, processing_resolution, keep_aspect_ratio, self.pad_multiple, resample)

    @staticmethod
    def postprocess(
        prediction: torch.Tensor,
        padded_size: tuple[int, int],
        padding: tuple[int, int],
        output_size: tuple[int, int] | None,
        resample: str = "bilinear",
    ) -> torch.Tensor:
        """Map a prediction on the (padded) processing grid, at any scale of it, back to the image: resize to
        `padded_size`, crop the padding, resize to `output_size` (None: stay at processing resolution), clamp.
        """
        prediction = resize(prediction.float(), padded_size, "bilinear")
        prediction = prediction[..., : padded_size[0] - padding[0], : padded_size[1] - padding[1]]
        if output_size is not None:
            prediction = resize(prediction, output_size, resample)
        return prediction.clamp(0.0, 1.0)

    @staticmethod
    def format_output(predictions: list[torch.Tensor], output_type: str):
        """List of `(1, 1, H, W)` tensors -> "pt": `(N, 1, H, W)` tensor; "np": `(N, H, W, 1)` float32 array;
        "pil": list of 8-bit grayscale images. When sizes differ, "pt" and "np" give a list of per-image
        `(1, H, W)` tensors / `(H, W, 1)` arrays instead of one stacked array."""
        if output_type == "pil":
            return [alpha_to_pil(p) for p in predictions]
        same_size = len({tuple(p.shape) for p in predictions}) == 1
        if output_type == "pt":
            return torch.cat(predictions) if same_size else [p[0] for p in predictions]
        arrays = [p[0].permute(1, 2, 0).cpu().numpy() for p in predictions]
        return np.stack(arrays) if same_size else arrays


def resize(image: torch.Tensor, size: tuple[int, int], mode: str = "bilinear") -> torch.Tensor:
    """Resize `(N, C, H, W)` to `size`, antialiased when shrinking with a bilinear or bicubic filter."""
    if tuple(image.shape[-2:]) == tuple(size):
        return image
    antialias = mode in ("bilinear", "bicubic")
    kwargs = {"align_corners": False} if mode in ("bilinear", "bicubic") else {}
    return F.interpolate(image, size=size, mode=mode, antialias=antialias, **kwargs)


def alpha_to_pil(alpha: torch.Tensor | np.ndarray) -> PIL.Image.Image:
    """An alpha in [0, 1], `(H, W)`, `(H, W, 1)`, `(1, H, W)` or `(1, 1, H, W)` -> 8-bit grayscale PIL image."""
    if isinstance(alpha, torch.Tensor):
        alpha = alpha.detach().float().cpu().numpy()
    alpha = np.asarray(alpha, dtype=np.float32)
    while alpha.ndim > 2 and alpha.shape[0] == 1:  # (1, 1, H, W), (1, H, W)
        alpha = alpha[0]
    while alpha.ndim > 2 and alpha.shape[-1] == 1:  # (H, W, 1)
        alpha = alpha[..., 0]
    if alpha.ndim != 2:
        raise ValueError(f"`alpha` must hold one (H, W) map, got shape {alpha.shape}.")
    return PIL.Image.fromarray(np.round(np.clip(alpha, 0, 1) * 255).astype(np.uint8), mode="L")


# Foreground colour estimation ------------------------------------------------------------------------------------

# Offsets of the 4-neighbourhood in a 1-pixel padded map: up, down, left, right.
_NEIGHBOURS = ((0, 1), (2, 1), (1, 0), (1, 2))


def _neighbour_weights(alpha: torch.Tensor, eps_r: float, omega: float) -> list[torch.Tensor]:
    """Smoothness weights eps_r + omega |alpha_i - alpha_j| towards each neighbour j (0 outside the image)."""
    height, width = alpha.shape[-2:]
    padded = F.pad(alpha, (1, 1, 1, 1))  # outside pixels get weight 0 below
    inside = F.pad(torch.ones_like(alpha), (1, 1, 1, 1))
    weights = []
    for dy, dx in _NEIGHBOURS:
        neighbour = padded[..., dy : dy + height, dx : dx + width]
        weights.append((eps_r + omega * (alpha - neighbour).abs()) * inside[..., dy : dy + height, dx : dx + width])
    return weights


def _neighbour_sum(x: torch.Tensor, weights: list[torch.Tensor]) -> torch.Tensor:
    height, width = x.shape[-2:]
    padded = F.pad(x, (1, 1, 1, 1))  # the weights are 0 outside the image
    return sum(w * padded[..., dy : dy + height, dx : dx + width] for w, (dy, dx) in zip(weights, _NEIGHBOURS))


def estimate_foreground(
    image: torch.Tensor,
    alpha: torch.Tensor,
    eps_r: float = 5e-3,
    omega: float = 1e-1,
    small_size: int = 32,
    small_iterations: int = 10,
    big_iterations: int = 2,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Estimate the foreground and background colours `F`, `B` with `I = alpha F + (1 - alpha) B` (Eq. (1)).

    Multi-level estimator (after Germer et al., "Fast multi-level foreground estimation", ICPR 2020, written from
    its cost function): per pixel, minimise the compositing error `(alpha F + (1 - alpha) B - I)^2` plus a
    smoothness term `sum_j (eps_r + omega |alpha_i - alpha_j|) (|F_i - F_j|^2 + |B_i - B_j|^2)` over the
    4-neighbours. With the neighbours fixed, each pixel's `(F, B)` solves a 2x2 linear system; the sweeps run on
    an image pyramid from 1 pixel up to full size, each level starting from the coarser solution, so colours from
    solid regions spread into the transparent ones. Work is O(HW) per sweep; the sweeps are Jacobi (vectorised).

    Args:
        image: `(N, 3, H, W)` in [0, 1].
        alpha: `(N, 1, H, W)` in [0, 1].
        eps_r, omega: smoothness weights (the paper's defaults).
        small_size, small_iterations, big_iterations: levels up to `small_size` pixels get `small_iterations`
            sweeps, larger levels `big_iterations`.

    Returns:
        `(F, B)`, float32 tensors `(N, 3, H, W)` in [0, 1].
    """
    if image.shape[-2:] != alpha.shape[-2:] or alpha.shape[1] != 1:
        raise ValueError(
            f"`alpha` must be (N, 1, H, W) at the image's size {tuple(image.shape[-2:])}, got {tuple(alpha.shape)}."
        )
    image, alpha = image.float(), alpha.float().clamp(0, 1)
    full_h, full_w = image.shape[-2:]
    num_levels = max(1, math.ceil(math.log2(max(full_h, full_w))))
    foreground = background = image.mean(dim=(-2, -1), keepdim=True)
    for level in range(num_levels + 1):
        size = (
            max(1, round(full_h ** (level / num_levels))),
            max(1, round(full_w ** (level / num_levels))),
        )
        level_image = F.interpolate(image, size, mode="nearest")
        a = F.interpolate(alpha, size, mode="nearest")
        foreground = F.interpolate(foreground, size, mode="nearest")
        background = F.interpolate(background, size, mode="nearest")
        weights = _neighbour_weights(a, eps_r, omega)
        # A tiny ridge keeps the coarsest levels (no neighbours) well posed.
        total = sum(weights) + 1e-5
        a11, a12, a22 = a * a + total, a * (1 - a), (1 - a) * (1 - a) + total
        det = a11 * a22 - a12 * a12
        for _ in range(small_iterations if max(size) <= small_size else big_iterations):
            rhs_f = a * level_image + _neighbour_sum(foreground, weights)
            rhs_b = (1 - a) * level_image + _neighbour_sum(background, weights)
            foreground = ((a22 * rhs_f - a12 * rhs_b) / det).clamp(0, 1)
            background = ((a11 * rhs_b - a12 * rhs_f) / det).clamp(0, 1)
    return foreground, background


def cutout(image: torch.Tensor, alpha: torch.Tensor) -> PIL.Image.Image:
    """An RGBA cut-out: the estimated foreground colours with the alpha matte as the alpha channel.

    Args:
        image: `(1, 3, H, W)` in [0, 1]; alpha: `(1, 1, H, W)` in [0, 1].
    """
    foreground, _ = estimate_foreground(image, alpha)
    rgba = torch.cat([foreground, alpha.float()], dim=1)[0].permute(1, 2, 0).cpu().numpy()
    return PIL.Image.fromarray(np.round(rgba * 255).astype(np.uint8), mode="RGBA")
