# Copyright 2026 The diffusers-matte authors. Licensed under the Apache License, Version 2.0.
import numpy as np
import PIL.Image
import pytest
import torch

from diffusers_matte.pipelines.soft_grounding.image_processor import (
    DEFAULT_MAX_MEGAPIXELS,
    ImageTooLargeError,
    SoftGroundingImageProcessor,
    alpha_to_pil,
    check_image_size,
    cutout,
    estimate_foreground,
    load_image,
    load_images,
    open_image,
    to_rgb_pil,
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
        (PIL.Image.new("La", (4, 4)), "mode 'La', which PIL cannot convert to RGB"),
        (np.zeros((0, 4, 3), np.uint8), r"is empty \(shape \(0, 4, 3\)\)"),
        (torch.zeros(3, 4, 0), r"is empty \(shape \(3, 4, 0\)\)"),
        (np.zeros((0, 4, 4, 3), np.uint8), "is empty"),
        (PIL.Image.new("RGB", (0, 3)), "is empty"),
        (PIL.Image.fromarray(np.full((4, 4), 300.0, np.float32)), r"mode 'F'\) with values in \[300, 300\]"),
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


# Reading images as people see them ------------------------------------------------------------------------------


def _phone_photo(path, orientation=6):
    """Stored 200 wide x 128 high with an EXIF Orientation tag; displayed 128 x 200 (orientation 6: rotate)."""
    stored = _rgb_uint8(128, 200, seed=3)
    image = PIL.Image.fromarray(stored)
    exif = image.getexif()
    exif[0x0112] = orientation
    image.save(path, exif=exif)  # PNG keeps the pixels exact
    return stored


@pytest.mark.parametrize("orientation, upright", [(3, lambda a: a[::-1, ::-1]), (6, lambda a: np.rot90(a, -1))])
def test_exif_orientation_is_applied_on_every_pil_path(tmp_path, orientation, upright):
    stored = _phone_photo(tmp_path / "phone.png", orientation)
    expected = torch.from_numpy(upright(stored).copy()).permute(2, 0, 1)[None] / 255.0
    torch.testing.assert_close(load_image(PIL.Image.open(tmp_path / "phone.png")), expected)  # the pipeline's path
    opened = open_image(tmp_path / "phone.png")
    assert opened.size == (expected.shape[-1], expected.shape[-2])
    torch.testing.assert_close(load_image(opened), expected)  # applying it twice changes nothing
    np.testing.assert_array_equal(np.asarray(to_rgb_pil(opened)), upright(stored))
    # numpy arrays and tensors are taken as they are
    assert load_image(stored).shape == (1, 3, 128, 200)


def test_modes_pil_converts_are_converted():
    cmyk = load_image(PIL.Image.new("CMYK", (5, 3), (0, 255, 255, 0)))
    torch.testing.assert_close(cmyk[0, :, 0, 0], torch.tensor([1.0, 0.0, 0.0]))  # red, as PIL shows it
    bilevel = load_image(PIL.Image.new("1", (4, 4), 1))
    assert bilevel.shape == (1, 3, 4, 4) and bool((bilevel == 1).all())
    for mode in ("YCbCr", "HSV", "RGBa", "PA"):
        assert load_image(PIL.Image.new(mode, (4, 4))).shape == (1, 3, 4, 4), mode
    unit = np.linspace(0, 1, 12, dtype=np.float32).reshape(3, 4)
    torch.testing.assert_close(load_image(PIL.Image.fromarray(unit))[0, 0], torch.from_numpy(unit))
    gray = PIL.Image.fromarray((unit * 255).round().astype(np.uint8))
    torch.testing.assert_close(load_image(gray.convert("F")), load_image(gray))  # PIL's own 0..255 float scale


def _tiff32(path, values, signed=True, max_sample=None):
    image = PIL.Image.fromarray(np.asarray(values, np.int32))
    tags = {}
    if not signed:
        tags[339] = 1  # SampleFormat: unsigned integer
    if max_sample is not None:
        tags[281] = max_sample  # MaxSampleValue
    image.save(path, tiffinfo=tags)
    return path


def test_32_bit_integer_tiffs_are_scaled_by_what_the_file_means(tmp_path):
    values = np.array([[0, 1 << 20], [1 << 30, (1 << 31) - 1]])
    signed = load_image(open_image(_tiff32(tmp_path / "signed.tif", values)))[0, 0]
    torch.testing.assert_close(signed, torch.from_numpy(values / (2**31 - 1)).float())
    # a file that says its white level (today: divided by 65535 whatever it says)
    said = load_image(PIL.Image.open(_tiff32(tmp_path / "said.tif", [[0, 500], [1000, 250]], max_sample=1000)))
    torch.testing.assert_close(said[0, 0], torch.tensor([[0.0, 0.5], [1.0, 0.25]]))
    with pytest.raises(ValueError, match="negative values"):
        load_image(PIL.Image.open(_tiff32(tmp_path / "negative.tif", [[-5, 0]])))
    # "I" images without such a meaning (PIL decodes 16-bit PGM to "I" on 0..65535) keep the 16-bit range
    pgm = tmp_path / "deep.pgm"
    pgm.write_bytes(b"P5\n2 1\n1000\n" + np.array([0, 1000], ">u2").tobytes())
    torch.testing.assert_close(load_image(open_image(pgm))[0, 0], torch.tensor([[0.0, 1.0]]))


def test_open_image_checks_the_size_before_decoding(tmp_path, recwarn):
    PIL.Image.new("P", (10000, 10000)).save(tmp_path / "bomb.png")  # 12 KB, 100 megapixels
    with pytest.raises(ImageTooLargeError, match=r"10000x10000 \(100.0 megapixels\), above the limit of 50 "):
        open_image(tmp_path / "bomb.png")
    assert DEFAULT_MAX_MEGAPIXELS == 50
    assert not [w for w in recwarn if issubclass(w.category, PIL.Image.DecompressionBombWarning)]
    opened = open_image(tmp_path / "bomb.png", max_megapixels=101)  # asked for: read, without PIL's warning
    assert opened.size == (10000, 10000) and not recwarn.list
    check_image_size((4000, 3000), 12)
    with pytest.raises(ImageTooLargeError):
        check_image_size((4001, 3000), 12)
    with pytest.raises(ValueError, match="positive"):
        check_image_size((1, 1), 0)


def test_the_pipeline_refuses_an_empty_image_clearly():
    from diffusers_matte.pipelines import SoftGroundingMattingPipeline
    from diffusers_matte.testing import get_dummy_components

    pipe = SoftGroundingMattingPipeline(**get_dummy_components())
    with pytest.raises(ValueError, match=r"`image\[0\]` is empty"):
        pipe(np.zeros((0, 8, 3), np.uint8), "a dog")
