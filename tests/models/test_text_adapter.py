# Copyright 2026 The diffusers-matte authors. Licensed under the Apache License, Version 2.0.
import pytest
import torch

from diffusers_matte.models.text_adapter import TextAdapter


def _inputs(dim=16, seed=0):
    return torch.randn(2, 7, dim, generator=torch.Generator().manual_seed(seed))


def _adapter(**kwargs):
    torch.manual_seed(0)
    return TextAdapter(**{"embed_dim": 16, "reduction": 4, **kwargs})


def test_default_config_matches_clip_adapter():
    adapter = TextAdapter()
    assert adapter.config.ratio == 0.2 and adapter.config.reduction == 4 and adapter.config.embed_dim == 1024
    linears = [m for m in adapter.mlp if isinstance(m, torch.nn.Linear)]
    assert [tuple(m.weight.shape) for m in linears] == [(256, 1024), (1024, 256)]


def test_shape_and_residual_ratio_formula():
    adapter = _adapter(ratio=0.3)
    x = _inputs()
    out = adapter(x)
    assert out.shape == x.shape
    torch.testing.assert_close(out, 0.3 * adapter.mlp(x) + 0.7 * x)
    assert not torch.allclose(out, x)


def test_ratio_zero_is_identity_and_ratio_one_is_pure_mlp():
    x = _inputs()
    torch.testing.assert_close(_adapter(ratio=0.0)(x), x)
    adapter = _adapter(ratio=1.0)
    torch.testing.assert_close(adapter(x), adapter.mlp(x))


def test_final_activation_switch():
    x = _inputs()
    with_relu = _adapter(ratio=1.0)
    assert (with_relu(x) >= 0).all()
    without = _adapter(ratio=1.0, final_activation=False)
    assert (without(x) < 0).any()


def test_save_load_round_trip(tmp_path):
    adapter = _adapter(ratio=0.5, final_activation=False, bias=True)
    adapter.save_pretrained(tmp_path)
    loaded = TextAdapter.from_pretrained(tmp_path)
    assert loaded.config.ratio == 0.5 and loaded.config.final_activation is False
    x = _inputs()
    torch.testing.assert_close(loaded(x), adapter(x))


def test_gradients_reach_both_layers():
    adapter = _adapter()
    adapter(_inputs()).sum().backward()
    for name, param in adapter.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, name


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match="16 channels"):
        _adapter()(_inputs(dim=8))
    with pytest.raises(ValueError, match="divisible"):
        TextAdapter(embed_dim=10, reduction=4)
    with pytest.raises(ValueError, match="ratio"):
        TextAdapter(embed_dim=16, ratio=1.5)
