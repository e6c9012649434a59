# Copyright 2026 The diffusers-matte authors. Licensed under the Apache License, Version 2.0.
"""Expected output slices, pinned: a silent numeric change in the models, the pipeline or the shipped demonstration
model fails here (as diffusers' fast pipeline tests pin theirs). Re-pin only for a change made on purpose, and say
why in the commit. Also: our UNet subclass mirrors the installed `UNet2DConditionModel.__init__`."""

import inspect
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
import torch
from diffusers import UNet2DConditionModel

from diffusers_matte import SoftGroundingMattingPipeline
from diffusers_matte.cli import DEMO_MODEL_DIR
from diffusers_matte.models.unet_matte import MatteUNet2DConditionModel
from diffusers_matte.testing import get_dummy_components, get_dummy_inputs, get_dummy_unet_init_dict

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "images"
ATOL = 1e-4
OUR_PARAMETERS = ("prediction_head", "head_channels", "prediction_timestep", "self_attention_kv_downsample")


def _tiny_unet_output(head: str) -> torch.Tensor:
    torch.manual_seed(0)
    unet = MatteUNet2DConditionModel(**get_dummy_unet_init_dict(prediction_head=head)).eval()
    generator = torch.Generator().manual_seed(0)
    latents = torch.randn(1, unet.config.in_channels, 16, 16, generator=generator)
    text = torch.randn(1, 7, unet.config.cross_attention_dim, generator=generator)
    with torch.no_grad():
        return unet(latents, 0, text).sample


@pytest.mark.parametrize(
    "head, expected",
    [
        ("region", [0.222564, 0.199419, 0.231356, 0.060681, 0.087979, 0.055258, -0.126967, -0.13788, -0.054884]),
        ("matte", [0.522526, 0.49938, 0.531317, 0.02635, 0.053648, 0.020927]),
    ],
)
def test_tiny_unet_output_slice(head, expected):
    sample = _tiny_unet_output(head)
    np.testing.assert_allclose(sample[0, :, -1, -3:].flatten().numpy(), expected, atol=ATOL, rtol=0)


def test_tiny_pipeline_output_slice():
    pipe = SoftGroundingMattingPipeline(**get_dummy_components())
    pipe.set_progress_bar_config(disable=True)
    out = pipe(**get_dummy_inputs())
    assert out.alpha.shape == (1, 40, 56, 1)
    alpha = [0.562671, 0.567525, 0.570559, 0.569386, 0.571595, 0.572975, 0.573619, 0.57416, 0.574499]
    transparency = [0.502151, 0.503127, 0.503738, 0.499632, 0.500703, 0.501372, 0.498043, 0.499174, 0.499881]
    np.testing.assert_allclose(out.alpha[0, -3:, -3:, 0].flatten(), alpha, atol=ATOL, rtol=0)
    np.testing.assert_allclose(out.transparency[0, -3:, -3:, 0].flatten(), transparency, atol=ATOL, rtol=0)
    assert out.alpha.mean() == pytest.approx(0.511384, abs=ATOL)


def test_demonstration_model_output_on_an_example_image():
    pipe = SoftGroundingMattingPipeline.from_pretrained(DEMO_MODEL_DIR)
    pipe.set_progress_bar_config(disable=True)
    image = PIL.Image.open(EXAMPLES / "triangle_box_star.png").convert("RGB")
    alpha = pipe(image, "the orange box", output_type="np").alpha
    assert alpha.shape == (1, 64, 64, 1)
    # inside the orange box, at the top of the image
    expected = [0.9344, 0.939384, 0.913346, 0.93633, 0.935723, 0.91405, 0.941028, 0.934372, 0.916702]
    np.testing.assert_allclose(alpha[0, 10:13, 36:39, 0].flatten(), expected, atol=ATOL, rtol=0)
    assert alpha.mean() == pytest.approx(0.085725, abs=ATOL)


def test_unet_mirrors_the_installed_diffusers_signature():
    """Every parameter of diffusers' UNet, with its default, then ours: a new diffusers release that adds, drops or
    changes one fails here rather than in a user's `from_pretrained`."""
    theirs = inspect.signature(UNet2DConditionModel.__init__).parameters
    ours = inspect.signature(MatteUNet2DConditionModel.__init__).parameters
    assert list(ours) == [*theirs, *OUR_PARAMETERS]
    changed = {name: (p.default, ours[name].default) for name, p in theirs.items() if p.default != ours[name].default}
    assert not changed, f"defaults that differ from diffusers' (theirs, ours): {changed}"
