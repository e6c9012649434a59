# Copyright 2026 The diffusers-matte authors. Licensed under the Apache License, Version 2.0.
import pytest
import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

from diffusers_matte.models import sparse_refiner as sr
from diffusers_matte.models.sparse_refiner import (
    SparseMatteRefiner,
    SparseMatteRefinerOutput,
    is_spconv_available,
    uncertain_mask,
)

TINY = {"context_channels": 4, "hidden_channels": (8, 4)}
needs_spconv = pytest.mark.skipif(
    not is_spconv_available("cpu"),
    reason="spconv is not installed (optional extra: pip install spconv)",
)


def _refiner(random_weights=True, **overrides):
    torch.manual_seed(0)
    refiner = SparseMatteRefiner(**{**TINY, **overrides}).eval()
    if random_weights:  # the last layers start at zero; give every layer weights that change the output
        with torch.no_grad():
            for p in refiner.parameters():
                p.normal_(0.0, 0.3)
    return refiner


def _inputs(height=45, width=38, low=(12, 10), context_size=None, batch=2, seed=0, sharpness=4.0):
    """A soft disc (a band of uncertain pixels) in item 0, random alpha (mostly uncertain) in item 1."""
    g = torch.Generator().manual_seed(seed)
    ys = torch.linspace(-1, 1, low[0])[:, None]
    xs = torch.linspace(-1, 1, low[1])[None, :]
    disc = ((0.6 - (ys**2 + xs**2).sqrt()) * sharpness + 0.5).clamp(0, 1)
    alpha = torch.stack([disc[None], torch.rand(1, *low, generator=g)])[:batch]
    context_size = context_size or low
    return {
        "pixel_values": torch.rand(batch, 3, height, width, generator=g) * 2 - 1,
        "alpha": alpha,
        "context": torch.randn(batch, TINY["context_channels"], *context_size, generator=g),
    }


def _bilinear_chain(alpha, sizes):
    for size in sizes:
        alpha = F.interpolate(alpha, size=size, mode="bilinear", align_corners=False)
    return alpha


def test_uncertain_mask_is_strict():
    alpha = torch.tensor([0.0, 0.01, 0.0100001, 0.5, 0.9899999, 0.99, 1.0])
    assert uncertain_mask(alpha).tolist() == [
        False,
        False,
        True,
        True,
        True,
        False,
        False,
    ]


def test_group_sizes_coarse_to_fine_and_clamped():
    refiner = _refiner(random_weights=False)
    assert refiner.group_sizes((512, 512), (4096, 3072)) == [(2048, 1536), (4096, 3072)]
    # never below the input alpha, never above the image
    assert refiner.group_sizes((512, 512), (768, 600)) == [(512, 512), (768, 600)]
    assert refiner.group_sizes((512, 512), (300, 400)) == [(300, 400), (300, 400)]


def test_untrained_refiner_is_bilinear_upsampling():
    refiner = _refiner(random_weights=False)
    inputs = _inputs()
    out = refiner(**inputs, backend="torch")
    assert isinstance(out, SparseMatteRefinerOutput)
    assert out.alpha.shape == (2, 1, 45, 38)
    assert out.sizes == ((22, 19), (45, 38))
    expected = _bilinear_chain(inputs["alpha"], out.sizes)
    torch.testing.assert_close(out.alpha, expected, atol=1e-6, rtol=0)
    assert all(n > 0 for n in out.num_active)


@pytest.mark.parametrize("context_size", [None, (20, 16)])
def test_torch_path_matches_dense_reference(context_size):
    refiner = _refiner()
    inputs = _inputs(context_size=context_size)
    with torch.no_grad():
        dense = refiner(**inputs, backend="dense")
        sparse = refiner(**inputs, backend="torch")
    assert sparse.num_active == dense.num_active
    assert (dense.alpha - _bilinear_chain(inputs["alpha"], dense.sizes)).abs().max() > 0.05
    torch.testing.assert_close(sparse.alpha, dense.alpha, atol=1e-5, rtol=0)


def test_only_uncertain_pixels_change():
    refiner = _refiner(num_groups=1)
    inputs = _inputs()
    with torch.no_grad():
        out = refiner(**inputs, backend="torch")
    upsampled = _bilinear_chain(inputs["alpha"], out.sizes)
    mask = uncertain_mask(upsampled)
    assert torch.equal(out.alpha[~mask], upsampled[~mask])
    assert (out.alpha[mask] != upsampled[mask]).float().mean() > 0.9
    assert out.num_active == (int(mask.sum()),)
    assert out.alpha.min() >= 0 and out.alpha.max() <= 1


def test_chunk_size_does_not_change_the_result():
    refiner = _refiner()
    inputs = _inputs()
    with torch.no_grad():
        whole = refiner(**inputs, backend="torch", chunk_size=1 << 20).alpha
        chunked = refiner(**inputs, backend="torch", chunk_size=97).alpha
    torch.testing.assert_close(chunked, whole, atol=1e-6, rtol=0)


def test_no_uncertain_pixel_skips_the_convolutions(monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("convolved although nothing is uncertain")

    monkeypatch.setattr(sr.SparseConvGroup, "forward_torch", fail)
    monkeypatch.setattr(sr.SparseConvGroup, "forward_spconv", fail)
    refiner = _refiner()
    inputs = _inputs()
    inputs["alpha"] = torch.ones_like(inputs["alpha"])
    inputs["alpha"][1] = 0.0
    out = refiner(**inputs)
    assert out.num_active == (0, 0)
    assert torch.equal(out.alpha, _bilinear_chain(inputs["alpha"], out.sizes))


def test_gradients_match_dense_reference():
    inputs = _inputs()
    inputs["context"].requires_grad_(True)
    grads = {}
    for backend in ("dense", "torch"):
        refiner = _refiner()
        inputs["context"].grad = None
        target = torch.rand(2, 1, 45, 38, generator=torch.Generator().manual_seed(1))
        loss = (refiner(**inputs, backend=backend).alpha - target).abs().mean()
        loss.backward()
        grads[backend] = [p.grad for p in refiner.parameters()] + [inputs["context"].grad]
    assert all(g.abs().sum() > 0 for g in grads["torch"])
    for dense, sparse in zip(grads["dense"], grads["torch"]):
        torch.testing.assert_close(sparse, dense, atol=1e-5, rtol=1e-4)


class _LargestOutput(TorchDispatchMode):
    """Records the largest tensor any operator produces."""

    def __init__(self):
        super().__init__()
        self.largest = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(t, torch.Tensor):
                self.largest = max(self.largest, t.numel())
        return out


@pytest.mark.parametrize("backend", ["torch", pytest.param("spconv", marks=needs_spconv)])
def test_sparse_memory_does_not_grow_with_channels_times_area(backend):
    # A 256x256 image with a thin uncertain band: the sparse paths never build a (C, H, W) map, the largest
    # tensor is a one-channel map (alpha) or the image itself; the dense reference builds (1 + C + 3, H, W).
    refiner = _refiner(context_channels=16)
    inputs = _inputs(height=256, width=256, low=(32, 32), batch=1, sharpness=16.0)
    inputs["context"] = torch.randn(1, 16, 32, 32)
    area = 256 * 256
    sizes = {}
    for name in (backend, "dense"):
        with torch.no_grad(), _LargestOutput() as probe:
            out = refiner(**inputs, backend=name, chunk_size=512)
        sizes[name] = probe.largest
    assert out.num_active[-1] < area // 5
    assert sizes[backend] <= 3 * area
    assert sizes["dense"] >= 20 * area


@needs_spconv
def test_spconv_matches_torch_path():
    # Enough active pixels (several thousand) to catch spconv's multi-threaded CPU race (handled in the module).
    refiner = _refiner()
    inputs = _inputs(height=90, width=76, low=(24, 20))
    with torch.no_grad():
        with_torch = refiner(**inputs, backend="torch")
        # the race is intermittent: several runs make a regression likely to show
        runs = [refiner(**inputs, backend="spconv") for _ in range(3)]
    assert with_torch.num_active[-1] > 2000
    for with_spconv in runs:
        assert with_spconv.num_active == with_torch.num_active
        torch.testing.assert_close(with_spconv.alpha, with_torch.alpha, atol=1e-5, rtol=0)


def test_auto_prefers_spconv_where_it_can_run(monkeypatch):
    monkeypatch.setattr(
        sr,
        "is_spconv_available",
        lambda device_type="cpu": device_type in ("cpu", "cuda"),
    )
    refiner = _refiner()
    assert refiner.resolve_backend("auto", torch.device("cuda"), needs_grad=True) == "spconv"
    assert refiner.resolve_backend("auto", torch.device("cpu"), needs_grad=False) == "spconv"
    assert refiner.resolve_backend("auto", torch.device("cpu"), needs_grad=True) == "torch"
    assert refiner.resolve_backend("auto", torch.device("mps"), needs_grad=False) == "torch"
    with pytest.raises(RuntimeError, match="no backward"):
        refiner.resolve_backend("spconv", torch.device("cpu"), needs_grad=True)


def test_auto_falls_back_to_torch_without_spconv(monkeypatch):
    monkeypatch.setattr(sr, "is_spconv_available", lambda device_type="cpu": False)
    refiner = _refiner()
    cpu = torch.device("cpu")
    assert refiner.resolve_backend("auto", cpu, needs_grad=False) == "torch"
    with pytest.raises(ImportError, match="pip install spconv"):
        refiner.resolve_backend("spconv", cpu, needs_grad=False)
    with pytest.raises(ValueError, match="backend"):
        refiner.resolve_backend("cuda", cpu, needs_grad=False)


def test_spconv_is_never_available_on_mps():
    assert not is_spconv_available("mps")


def test_save_and_load_round_trip(tmp_path):
    refiner = _refiner(num_groups=1, hidden_channels=(6,))
    refiner.save_pretrained(tmp_path)
    loaded = SparseMatteRefiner.from_pretrained(tmp_path).eval()
    assert loaded.config.hidden_channels in ((6,), [6])
    inputs = _inputs()
    with torch.no_grad():
        torch.testing.assert_close(
            loaded(**inputs, backend="torch").alpha,
            refiner(**inputs, backend="torch").alpha,
        )


def test_return_tuple():
    alpha, num_active, sizes = _refiner()(**_inputs(), backend="torch", return_dict=False)
    assert alpha.shape == (2, 1, 45, 38) and len(num_active) == len(sizes) == 2


@pytest.mark.parametrize(
    "change, match",
    [
        ({"pixel_values": torch.zeros(2, 4, 45, 38)}, "pixel_values"),
        ({"alpha": torch.zeros(2, 2, 12, 10)}, "alpha"),
        ({"context": torch.zeros(2, 5, 12, 10)}, "context"),
        ({"context": torch.zeros(1, 4, 12, 10)}, "batch size"),
        ({"pixel_values": torch.rand(2, 3, 45, 38) * 255}, r"\[-1, 1\]"),
    ],
)
def test_bad_inputs_raise(change, match):
    with pytest.raises(ValueError, match=match):
        _refiner()(**{**_inputs(), **change})


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"kernel_size": 4}, "odd"),
        ({"uncertain_low": 0.5, "uncertain_high": 0.4}, "uncertain_low"),
        ({"num_groups": 0}, "num_groups"),
    ],
)
def test_bad_config_raises(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SparseMatteRefiner(**kwargs)


def test_bad_chunk_size_raises():
    with pytest.raises(ValueError, match="chunk_size"):
        _refiner()(**_inputs(), chunk_size=0)


def test_forward_refuses_spconv_training_on_cpu(monkeypatch):
    monkeypatch.setattr(sr, "is_spconv_available", lambda device_type="cpu": device_type == "cpu")
    refiner = _refiner()  # parameters require gradients and grad mode is on
    with pytest.raises(RuntimeError, match="backend='torch'"):
        refiner(**_inputs(), backend="spconv")


def test_refines_the_matting_decoder_output():
    # The call the pipeline makes: the decoder runs at the processing resolution, the refiner lifts its alpha
    # to the original image, reading the decoder's context feature (`hidden_states`).
    from diffusers_matte.models.matting_decoder import MattingDecoder

    torch.manual_seed(0)
    decoder = MattingDecoder(
        feature_channels=8,
        aligned_channels=8,
        convstream_channels=(4, 8, 8),
        fusion_channels=(8, 8, 4, 4),
        head_channels=4,
    ).eval()
    refiner = _refiner(context_channels=decoder.config.fusion_channels[-1])
    full = torch.rand(1, 3, 96, 80) * 2 - 1
    low = F.interpolate(full, size=(32, 32), mode="area")
    with torch.no_grad():
        decoded = decoder(
            low,
            torch.rand(1, 1, 4, 4),
            torch.randn(1, 1, 4, 4),
            torch.randn(1, 8, 4, 4),
        )
        out = refiner(full, decoded.alpha, decoded.hidden_states, backend="torch")
    assert out.alpha.shape == (1, 1, 96, 80)
    assert out.sizes == ((48, 40), (96, 80))
    assert out.num_active[-1] > 0
