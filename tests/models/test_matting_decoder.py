# Copyright 2026 The diffusers-matte authors. Licensed under the Apache License, Version 2.0.
import pytest
import torch

from diffusers_matte.models.matting_decoder import MattingDecoder, MattingDecoderOutput

TINY = {
    "feature_channels": 8,
    "aligned_channels": 8,
    "convstream_channels": (4, 8, 8),
    "fusion_channels": (8, 8, 4, 4),
    "head_channels": 4,
}


def _decoder(trained_head=True, **overrides):
    """A tiny decoder; `trained_head` gives the head's zero-initialised last layer random weights, as training
    would, so that every input reaches the output."""
    torch.manual_seed(0)
    decoder = MattingDecoder(**{**TINY, **overrides}).eval()
    if trained_head:
        torch.nn.init.normal_(decoder.head[-1].weight, std=0.5)
    return decoder


def _inputs(height=40, width=24, feature_channels=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    h, w = -(-height // 8), -(-width // 8)
    return {
        "pixel_values": torch.rand(2, 3, height, width, generator=g) * 2 - 1,
        "coarse_alpha": torch.rand(2, 1, h, w, generator=g),
        "transparency_logits": torch.randn(2, 1, h, w, generator=g),
        "features": torch.randn(2, feature_channels, h, w, generator=g),
    }


def test_default_size_matches_paper():
    # Paper Tab. 4: 2.67M learnable parameters for the encoder, decoder and alignment block.
    n = sum(p.numel() for p in MattingDecoder().parameters())
    assert 2.6e6 < n < 2.75e6, n


@pytest.mark.parametrize("size", [(40, 24), (32, 32), (36, 20)])
def test_output_at_image_resolution_in_unit_range(size):
    decoder = _decoder()
    with torch.no_grad():
        out = decoder(**_inputs(*size))
    assert isinstance(out, MattingDecoderOutput)
    assert out.alpha.shape == (2, 1, *size)
    assert out.hidden_states.shape == (2, TINY["fusion_channels"][-1], *size)
    assert out.alpha.min() >= 0 and out.alpha.max() <= 1


def test_every_input_matters():
    decoder = _decoder()
    inputs = _inputs()
    with torch.no_grad():
        reference = decoder(**inputs).alpha
        for name in ("pixel_values", "coarse_alpha", "transparency_logits", "features"):
            changed = dict(inputs, **{name: inputs[name].flip(-1)})
            assert not torch.allclose(decoder(**changed).alpha, reference), name


def test_tuple_output_and_determinism():
    decoder = _decoder()
    inputs = _inputs()
    with torch.no_grad():
        first = decoder(**inputs)
        alpha, hidden = decoder(**inputs, return_dict=False)
    torch.testing.assert_close(alpha, first.alpha, rtol=0, atol=0)
    torch.testing.assert_close(hidden, first.hidden_states, rtol=0, atol=0)


def test_save_load_round_trip(tmp_path):
    decoder = _decoder()
    decoder.save_pretrained(tmp_path)
    loaded = MattingDecoder.from_pretrained(tmp_path)
    assert tuple(loaded.config.convstream_channels) == TINY["convstream_channels"]
    inputs = _inputs()
    with torch.no_grad():
        torch.testing.assert_close(loaded(**inputs).alpha, decoder(**inputs).alpha)


def test_all_parameters_train():
    decoder = _decoder().train()
    decoder(**_inputs()).alpha.mean().backward()
    for name, param in decoder.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, name


def test_bad_config_is_refused():
    with pytest.raises(ValueError, match="fusion_channels"):
        MattingDecoder(convstream_channels=(4, 8), fusion_channels=(8, 8, 4, 4))


def test_untrained_decoder_returns_the_up_sampled_coarse_alpha():
    decoder = _decoder(trained_head=False)
    inputs = _inputs()
    with torch.no_grad():
        alpha = decoder(**inputs).alpha
    expected = torch.nn.functional.interpolate(inputs["coarse_alpha"], size=alpha.shape[-2:], mode="bilinear")
    torch.testing.assert_close(alpha, expected, rtol=0, atol=1e-6)


def test_refined_alpha_is_clipped_in_eval_mode_only():
    decoder = _decoder()
    inputs = _inputs()
    torch.nn.init.constant_(decoder.head[-1].bias, 2.0)  # pushes every pixel above 1
    with torch.no_grad():
        assert decoder(**inputs).alpha.max() == 1.0
        assert decoder.train()(**inputs).alpha.max() > 1.0


def test_direct_prediction_starts_from_an_ordinary_head():
    decoder = _decoder(trained_head=False, refine_coarse_alpha=False)
    inputs = _inputs()
    with torch.no_grad():
        alpha = decoder(**inputs).alpha
    coarse = torch.nn.functional.interpolate(inputs["coarse_alpha"], size=alpha.shape[-2:], mode="bilinear")
    assert decoder.head[-1].weight.abs().sum() > 0
    assert not torch.allclose(alpha, coarse, atol=1e-2)
