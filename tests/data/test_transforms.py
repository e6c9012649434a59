"""Training, evaluation and inference share one preprocessing: the same pixels for the same image."""

import numpy as np
import pytest
import torch
from PIL import Image

from diffusers_matte import SoftGroundingMattingPipeline
from diffusers_matte.data.transforms import TrainingTransform
from diffusers_matte.pipelines.soft_grounding.image_processor import (
    SoftGroundingImageProcessor,
    load_image,
    prepare_pixels,
)
from diffusers_matte.testing import get_dummy_components


def _image(height, width, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def test_a_training_batch_and_a_pipeline_call_see_the_same_pixels(monkeypatch):
    image = _image(48, 48)
    alpha = image[..., 0].astype(np.float32) / 255.0
    example = TrainingTransform(resolution=32, latent_factor=8, alpha_factors=()).from_arrays(image, alpha)

    pipe = SoftGroundingMattingPipeline(**get_dummy_components())
    seen = []
    encode = pipe.encode_image
    monkeypatch.setattr(pipe, "encode_image", lambda pixels, *a, **kw: seen.append(pixels) or encode(pixels, *a, **kw))
    pipe(Image.fromarray(image), prompt="the cat", processing_resolution=32)
    assert torch.equal(seen[0][0, :, :32, :32], example["pixel_values"])  # the pipeline pads on the bottom/right
    # the alpha goes through the same resize: a target made from the red channel is the resized red channel
    assert torch.allclose(example["alpha"][0], (example["pixel_values"][0] + 1) / 2, atol=1e-6)


def test_the_square_training_resize_is_the_processors_without_aspect_ratio():
    image = _image(30, 50, seed=1)
    example = TrainingTransform(resolution=32, latent_factor=8, alpha_factors=()).from_arrays(
        image, np.zeros((30, 50), np.float32)
    )
    pixels, padding, size = SoftGroundingImageProcessor().preprocess(
        load_image(Image.fromarray(image)), 32, keep_aspect_ratio=False
    )
    assert padding == (32, 32) and size == (30, 50)
    assert torch.equal(pixels[0, :, :32, :32], example["pixel_values"])
    kept, padding, _ = prepare_pixels(load_image(Image.fromarray(image)), 50, pad_multiple=8)
    assert kept.shape[-2:] == (32, 56) and padding == (2, 6)  # the aspect ratio kept, padded to the multiple


@pytest.mark.parametrize("keep", [True, False])
def test_prepare_pixels_normalises_to_minus_one_one(keep):
    pixels, _, _ = prepare_pixels(torch.ones(1, 3, 20, 10), 16, keep_aspect_ratio=keep)
    assert torch.allclose(pixels, torch.ones_like(pixels), atol=1e-5)
    pixels, _, _ = prepare_pixels(torch.zeros(1, 3, 20, 10), 16, keep_aspect_ratio=keep)
    assert torch.allclose(pixels, -torch.ones_like(pixels), atol=1e-5)
