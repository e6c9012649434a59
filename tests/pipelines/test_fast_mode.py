"""Fast mode: the pipeline with an `AutoencoderTiny` as its `vae`."""

import numpy as np
import pytest
import torch
from diffusers import AutoencoderTiny

from diffusers_matte import SoftGroundingMattingPipeline
from diffusers_matte.pipelines.soft_grounding.pipeline_soft_grounding import (
    check_vae_matches_unet,
    encode_latents,
    load_vae,
    vae_scale_factor,
)
from diffusers_matte.testing import get_dummy_components


def tiny_vae(**overrides) -> AutoencoderTiny:
    """An `AutoencoderTiny` with the dummy VAE's grid (4 channels at 1/2 of the image)."""
    torch.manual_seed(0)
    config = dict(
        encoder_block_out_channels=(8, 8),
        decoder_block_out_channels=(8, 8),
        num_encoder_blocks=(1, 1),
        num_decoder_blocks=(1, 1),
        latent_channels=4,
    )
    return AutoencoderTiny(**{**config, **overrides}).eval()


def test_the_tiny_encoder_gives_latents_on_the_vaes_grid():
    components = get_dummy_components()
    tiny = tiny_vae()
    assert vae_scale_factor(tiny) == vae_scale_factor(components["vae"]) == 2
    pixels = torch.rand(1, 3, 32, 32) * 2 - 1
    latents = encode_latents(tiny, pixels, torch.device("cpu"))
    torch.testing.assert_close(latents, tiny.encode(pixels).latents * tiny.config.scaling_factor)
    assert latents.shape == encode_latents(components["vae"], pixels, torch.device("cpu")).shape


def test_pipeline_runs_saves_and_loads_with_a_tiny_vae(tmp_path):
    components = get_dummy_components()
    image = np.random.default_rng(0).random((40, 24, 3)).astype(np.float32)
    default = SoftGroundingMattingPipeline(**components)
    fast = SoftGroundingMattingPipeline(**{**components, "vae": tiny_vae()})
    out = fast(image, prompt="the ball", output_type="np", processing_resolution=32)
    assert out.alpha[0].shape == (40, 24, 1) and np.isfinite(out.alpha[0]).all()
    reference = default(image, prompt="the ball", output_type="np", processing_resolution=32)
    assert not np.allclose(out.alpha[0], reference.alpha[0])  # the tiny encoder's latents, not the VAE's
    fast.save_pretrained(tmp_path / "fast")
    loaded = SoftGroundingMattingPipeline.from_pretrained(tmp_path / "fast")
    assert isinstance(loaded.vae, AutoencoderTiny)
    again = loaded(image, prompt="the ball", output_type="np", processing_resolution=32)
    np.testing.assert_allclose(again.alpha[0], out.alpha[0], atol=1e-6)
    # a default folder switched to fast mode by a component override, as diffusers pipelines take them
    default.save_pretrained(tmp_path / "default")
    switched = SoftGroundingMattingPipeline.from_pretrained(tmp_path / "default", vae=fast.vae)
    np.testing.assert_allclose(
        switched(image, prompt="the ball", output_type="np", processing_resolution=32).alpha[0],
        out.alpha[0],
        atol=1e-6,
    )


def test_load_vae_picks_the_class_its_config_names(tmp_path):
    kl = get_dummy_components()["vae"]
    tiny = tiny_vae()
    kl.save_pretrained(tmp_path / "kl")
    tiny.save_pretrained(tmp_path / "tiny-encoder" / "vae")  # as training/train_tiny_encoder.py writes it
    for path, expected in [
        (tmp_path / "kl", kl),
        (tmp_path / "tiny-encoder", tiny),
        (tmp_path / "tiny-encoder" / "vae", tiny),
    ]:
        loaded = load_vae(path)
        assert type(loaded) is type(expected), path
        for name, value in expected.state_dict().items():
            torch.testing.assert_close(loaded.state_dict()[name], value, rtol=0, atol=0)
    with pytest.raises(ValueError, match="holds no VAE: expected a folder or Hub id with vae_tiny/config.json"):
        load_vae(tmp_path / "tiny-encoder", subfolder="vae_tiny")  # not the folder's vae/ in its place


def test_check_vae_matches_unet_compares_latent_and_input_channels():
    components = get_dummy_components()
    check_vae_matches_unet(tiny_vae(), components["unet"])
    with pytest.raises(ValueError, match="the tiny one gives 3 latent channels, but the UNet reads 4"):
        check_vae_matches_unet(tiny_vae(latent_channels=3), components["unet"], "the tiny one")
