# Copyright 2026 The diffusers-matte authors. Licensed under the Apache License, Version 2.0.
import numpy as np
import PIL.Image
import pytest
import torch

from diffusers_matte.pipelines.soft_grounding.image_processor import (
    SoftGroundingImageProcessor,
    alpha_to_pil,
    cutout,
    estimate_foreground,
    load_image,
    load_images,
)


def _rgb_uint8(height=20, width=30, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def test_equivalent_inputs_load_identically():
    rgb = _rgb_uint8()
    reference = load_image(rgb)
    assert reference.shape == (1, 3, 20, 30) and reference.dtype == torch.float32
    torch.testing.assert_close(reference, torch.from_numpy(rgb).permute(2, 0, 1)[None] / 255.0)
    same = [
        PIL.Image.fromarray(rgb),
        PIL.Image.fromarray(np.dstack([rgb, np.full(rgb.shape[:2], 7, np.uint8)])),  # RGBA: alpha dropped
        rgb.astype(np.uint16) * 257,  # 16-bit
        rgb.astype(np.float32) / 255.0,
        torch.from_numpy(rgb).permute(2, 0, 1),  # uint8 CHW
        torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 255.0,  # float NCHW
    ]
    for item in same:
        torch.testing.assert_close(load_image(item), reference, atol=1e-6, rtol=0)


def test_grayscale_inputs_become_three_equal_channels():
    gray = _rgb_uint8()[..., 0]
    expected = torch.from_numpy(gray)[None, None].float().div(255).expand(1, 3, -1, -1)
    for item in (
        gray,
        PIL.Image.fromarray(gray),
        PIL.Image.fromarray(gray).convert("LA"),
        gray[..., None],
    ):
        torch.testing.assert_close(load_image(item), expected)
    sixteen = PIL.Image.fromarray(gray.astype(np.uint16) * 257)  # PIL mode I;16 (or I)
    torch.testing.assert_close(load_image(sixteen), expected, atol=1e-6, rtol=0)


@pytest.mark.parametrize(
    "bad, message",
    [
        (PIL.Image.new("CMYK", (4, 4)), "unsupported PIL mode 'CMYK'"),
        (np.zeros((4, 4, 5), np.uint8), "5 channels"),
        (np.zeros((4, 4, 3), np.int16), "dtype int16"),
        (np.full((4, 4, 3), 1.5, np.float32), r"outside \[0, 1\]"),
        (torch.zeros(4, 4, dtype=torch.int32), "dtype torch.int32"),
        (np.zeros((1, 1, 4, 4, 3)), "shape"),
        ("image.png", "type str"),
    ],
)
def test_unsupported_inputs_are_refused_with_a_clear_error(bad, message):
    with pytest.raises(ValueError, match=message):
        load_images([np.zeros((4, 4, 3), np.uint8), bad])
    with pytest.raises(ValueError, match=r"image\[1\]"):
        load_images([np.zeros((4, 4, 3), np.uint8), bad])


def test_load_images_splits_batches_and_keeps_sizes():
    images = load_images([np.zeros((2, 8, 6, 3), np.uint8), torch.rand(3, 5, 7)])
    assert [tuple(im.shape) for im in images] == [
        (1, 3, 8, 6),
        (1, 3, 8, 6),
        (1, 3, 5, 7),
    ]
    with pytest.raises(ValueError, match="empty list"):
        load_images([])


def test_preprocess_keeps_aspect_pads_and_postprocess_inverts():
    processor = SoftGroundingImageProcessor(pad_multiple=16)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, 20), torch.linspace(0, 1, 30), indexing="ij")
    image = torch.stack([xx, yy, xx * yy])[None]
    pixels, padding, original = processor.preprocess(image, processing_resolution=40)
    assert original == (20, 30)
    assert pixels.shape[-2:] == (32, 48) and padding == (
        32 - 27,
        48 - 40,
    )  # 20x30 -> 27x40 -> padded
    assert pixels.min() >= -1 and pixels.max() <= 1
    # A map that is the image's first channel comes back to the image (up to resampling blur).
    back = processor.postprocess((pixels[:, :1] + 1) / 2, (32, 48), padding, original)
    assert back.shape == (1, 1, 20, 30)
    assert (back - image[:, :1]).abs().max() < 0.05
    native, padding, _ = processor.preprocess(image, processing_resolution=0)
    assert native.shape[-2:] == (32, 32) and padding == (12, 2)
    torch.testing.assert_close(native[..., :20, :30], image * 2 - 1)


def test_format_output():
    maps = [torch.rand(1, 1, 6, 4), torch.rand(1, 1, 6, 4)]
    assert SoftGroundingImageProcessor.format_output(maps, "np").shape == (2, 6, 4, 1)
    assert SoftGroundingImageProcessor.format_output(maps, "pt").shape == (2, 1, 6, 4)
    pils = SoftGroundingImageProcessor.format_output(maps, "pil")
    assert pils[0].mode == "L" and pils[0].size == (4, 6)
    mixed = SoftGroundingImageProcessor.format_output([maps[0], torch.rand(1, 1, 3, 5)], "np")
    assert isinstance(mixed, list) and [m.shape for m in mixed] == [
        (6, 4, 1),
        (3, 5, 1),
    ]
    assert np.array_equal(np.asarray(alpha_to_pil(np.array([[0.0, 1.0]]))), [[0, 255]])


def _synthetic_composite(size=96, seed=0):
    """Smooth F and B, an alpha with a solid core, a soft rim and thin semi-transparent strands."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, size), torch.linspace(0, 1, size), indexing="ij")

    def smooth():
        return torch.nn.functional.interpolate(torch.rand(1, 3, 4, 4, generator=g), size, mode="bicubic")

    foreground = (0.6 * smooth() + 0.2 * torch.stack([xx, yy, xx * yy])[None]).clamp(0, 1)
    background = smooth().clamp(0, 1)
    radius = ((yy - 0.5) ** 2 + (xx - 0.5) ** 2).sqrt()
    alpha = ((0.3 - radius) / 0.12).clamp(0, 1)
    alpha = torch.maximum(alpha, 0.5 * (torch.sin(xx * 60) > 0.9).float() * (yy < 0.3).float())[None, None]
    return alpha * foreground + (1 - alpha) * background, alpha, foreground, background


def test_estimate_foreground_recovers_colours_better_than_the_image():
    image, alpha, foreground, background = _synthetic_composite()
    estimated_f, estimated_b = estimate_foreground(image, alpha)
    weight = alpha * (1 - alpha) > 0.01  # where foreground and background mix, the hard part

    def error(x):
        return (x - foreground).abs()[weight.expand_as(x)].mean()

    assert error(estimated_f) < 0.5 * error(image), (error(estimated_f), error(image))
    # The estimate explains the image (Eq. 1) where the alpha is not binary.
    recomposed = alpha * estimated_f + (1 - alpha) * estimated_b
    assert (recomposed - image).abs()[weight.expand_as(image)].mean() < 0.02
    with pytest.raises(ValueError, match="alpha"):
        estimate_foreground(image, alpha[..., :-1])


def test_cutout_is_rgba_with_estimated_colours():
    image, alpha, foreground, _ = _synthetic_composite(size=48)
    rgba = np.asarray(cutout(image, alpha)).astype(np.float32) / 255
    assert rgba.shape == (48, 48, 4)
    np.testing.assert_allclose(rgba[..., 3], alpha[0, 0].numpy(), atol=1 / 255)
    # Not premultiplied: the colour of a half-transparent pixel is the foreground's, not alpha * image.
    mixed = (alpha[0, 0] > 0.2) & (alpha[0, 0] < 0.8)
    f = foreground[0].permute(1, 2, 0).numpy()[mixed.numpy()]
    assert (
        np.abs(rgba[..., :3][mixed.numpy()] - f).mean()
        < np.abs(image[0].permute(1, 2, 0).numpy()[mixed.numpy()] - f).mean()
    )
