# Copyright 2026 The diffusers-matte authors. Licensed under the Apache License, Version 2.0.
"""Tests of diffusers_matte.metrics against hand-computed cases, the DIM MATLAB conventions and an Octave run."""

import math
import os
import tempfile
import threading
from collections import deque

import numpy as np
import pytest
import torch

from diffusers_matte.metrics import (
    METRIC_NAMES,
    MattingMetrics,
    all_metrics,
    conn,
    grad,
    mse,
    sad,
)

# ------------------------------------------------------------------------------------------------------------------
# Helpers: small deterministic alphas and independent reference implementations (plain loops, no scipy).
# ------------------------------------------------------------------------------------------------------------------


def _soft_disk(h, w, cy, cx, r, soft=2.5):
    yy, xx = np.mgrid[:h, :w]
    return np.clip((r - np.hypot(yy - cy, xx - cx)) / soft + 0.5, 0.0, 1.0)


def _quantise(x):
    return np.round(x * 255.0) / 255.0


def _block(shape, rows, cols, value=1.0, base=None):
    out = np.zeros(shape) if base is None else base.copy()
    out[rows[0] : rows[1], cols[0] : cols[1]] = value
    return out


def _reference_gaussgradient_kernel(sigma=1.4, epsilon=1e-2):
    """gaussgradient.m's 2-D kernel hx, entry by entry."""
    half = math.ceil(sigma * math.sqrt(-2 * math.log(math.sqrt(2 * math.pi) * sigma * epsilon)))
    size = 2 * half + 1

    def gauss(x):
        return math.exp(-(x**2) / (2 * sigma**2)) / (sigma * math.sqrt(2 * math.pi))

    hx = np.array(
        [[gauss(i - half) * (-(j - half) * gauss(j - half) / sigma**2) for j in range(size)] for i in range(size)]
    )
    return hx / math.sqrt((hx**2).sum())


def _reference_conv_replicate(image, kernel):
    """imfilter(image, kernel, 'replicate', 'conv') by direct summation."""
    half = kernel.shape[0] // 2
    padded = np.pad(image, half, mode="edge")
    out = np.zeros_like(image)
    h, w = image.shape
    for a in range(-half, half + 1):
        for b in range(-half, half + 1):
            out += kernel[a + half, b + half] * padded[half - a : half - a + h, half - b : half - b + w]
    return out


def _reference_grad(pred, gt):
    """compute_gradient_loss.m / 1000 in float64, with the direct 2-D filter and mat2gray."""
    hx = _reference_gaussgradient_kernel()
    amps = []
    for alpha in (pred, gt):
        alpha = (alpha - alpha.min()) / (alpha.max() - alpha.min())
        gx, gy = _reference_conv_replicate(alpha, hx), _reference_conv_replicate(alpha, hx.T)
        amps.append(np.sqrt(gx**2 + gy**2))
    return ((amps[0] - amps[1]) ** 2).sum() / 1000


def _reference_components_column_major(binary):
    """bwconncomp(binary, 4).PixelIdxList: components by breadth-first search, numbered in column-major scan order."""
    h, w = binary.shape
    seen = np.zeros_like(binary)
    comps = []
    for c in range(w):
        for r in range(h):
            if binary[r, c] and not seen[r, c]:
                comp, queue = [], deque([(r, c)])
                seen[r, c] = True
                while queue:
                    y, x = queue.popleft()
                    comp.append((y, x))
                    for ny, nx in ((y - 1, x), (y + 1, x), (y, x - 1), (y, x + 1)):
                        if 0 <= ny < h and 0 <= nx < w and binary[ny, nx] and not seen[ny, nx]:
                            seen[ny, nx] = True
                            queue.append((ny, nx))
                comps.append(comp)
    return comps


def _reference_conn(pred, gt):
    """compute_connectivity_error.m / 1000, line by line (single-precision alphas and thresholds)."""
    p = (pred * 255).astype(np.float32) / np.float32(255)
    g = (gt * 255).astype(np.float32) / np.float32(255)
    thresholds = [k / 10 for k in range(11)]
    l_map = np.full(p.shape, -1.0)
    for ii in range(1, 11):
        t = np.float32(thresholds[ii])
        comps = _reference_components_column_major((p >= t) & (g >= t))
        omega = np.zeros(p.shape, dtype=bool)
        if comps:
            sizes = [len(c) for c in comps]
            for y, x in comps[sizes.index(max(sizes))]:  # MATLAB's max: the first of equal maxima
                omega[y, x] = True
        l_map[(l_map == -1) & ~omega] = thresholds[ii - 1]
    l_map[l_map == -1] = 1
    l32 = l_map.astype(np.float32)
    dp, dg = p - l32, g - l32
    phi_p = 1 - dp * (dp >= np.float32(0.15))
    phi_g = 1 - dg * (dg >= np.float32(0.15))
    return np.abs(phi_p - phi_g).astype(np.float64).sum() / 1000


# ------------------------------------------------------------------------------------------------------------------
# SAD and MSE
# ------------------------------------------------------------------------------------------------------------------

PRED_2x3 = np.array([[0.0, 0.5, 1.0], [0.25, 0.75, 1.0]])
GT_2x3 = np.array([[0.0, 1.0, 0.5], [0.0, 0.75, 1.0]])
MASK_2x3 = np.array([[True, True, False], [False, False, True]])


def test_sad_hand_computed():
    assert sad(PRED_2x3, GT_2x3) == pytest.approx((0.5 + 0.5 + 0.25) / 1000, rel=1e-6)
    assert sad(PRED_2x3, GT_2x3, MASK_2x3) == pytest.approx(0.5 / 1000, rel=1e-6)


def test_mse_hand_computed_raw_scale():
    assert mse(PRED_2x3, GT_2x3) == pytest.approx((0.25 + 0.25 + 0.0625) / 6, rel=1e-6)
    assert mse(PRED_2x3, GT_2x3, MASK_2x3) == pytest.approx(0.25 / 3, rel=1e-6)


def test_empty_region_gives_matlab_values():
    empty = np.zeros((2, 3), dtype=bool)
    assert math.isnan(mse(PRED_2x3, GT_2x3, empty))  # MATLAB: 0 / 0
    assert sad(PRED_2x3, GT_2x3, empty) == 0.0
    assert grad(PRED_2x3, GT_2x3, empty) == 0.0
    assert conn(PRED_2x3, GT_2x3, empty) == 0.0


def test_identical_alphas_score_zero():
    gt = _quantise(_soft_disk(20, 27, 9, 12, 6))
    assert all(value == 0.0 for value in all_metrics(gt, gt.copy()).values())


# ------------------------------------------------------------------------------------------------------------------
# GRAD
# ------------------------------------------------------------------------------------------------------------------


def test_grad_matches_direct_2d_convolution_of_the_matlab_kernel():
    rng = np.random.default_rng(0)
    pred = np.clip(_soft_disk(14, 19, 6, 9, 4) + 0.1 * rng.random((14, 19)), 0, 1)
    gt = _soft_disk(14, 19, 7, 8, 5)
    assert _reference_gaussgradient_kernel().shape == (9, 9)
    assert grad(pred, gt) == pytest.approx(_reference_grad(pred, gt), rel=1e-5)


def test_grad_kernel_gain_on_a_ramp():
    # Away from the borders the filter maps a ramp of slope s to gx = s * (sum G / |G|) * (sum u G' / |G'|),
    # about 9.68 s; mat2gray turns a ramp over W columns into slope 1 / (W - 1).
    h, w = 12, 30
    u = np.arange(-4, 5)
    gauss = np.exp(-(u**2) / (2 * 1.4**2))
    dgauss = -u * gauss
    gain = gauss.sum() / np.linalg.norm(gauss) * abs((u * dgauss).sum()) / np.linalg.norm(dgauss)
    assert gain == pytest.approx(9.68, abs=0.01)
    ramp = np.tile(np.linspace(0.2, 0.8, w), (h, 1))
    interior = np.zeros((h, w), dtype=bool)
    interior[:, 4:-4] = True
    expected = interior.sum() * (gain / (w - 1)) ** 2 / 1000
    # gt constant: zero gradient.
    assert grad(ramp, np.zeros((h, w)), interior) == pytest.approx(expected, rel=1e-5)


def test_grad_applies_mat2gray_first():
    gt = _soft_disk(20, 27, 9, 12, 6)
    assert grad(0.2 + 0.6 * gt, gt) == pytest.approx(0.0, abs=1e-12)
    # Without the min-max normalisation (Yaoyi Li's port) the magnitudes scale by 0.6: error 0.4^2 |grad gt|^2.
    expected = 0.16 * grad(np.zeros_like(gt), gt, variant="gca")
    assert grad(0.2 + 0.6 * gt, gt, variant="gca") == pytest.approx(expected, rel=1e-9)
    assert expected > 0


def test_grad_is_a_difference_of_magnitudes():
    # A step and the opposite step have equal gradient magnitudes: GRAD 0 (the magnitude of the difference is not).
    step = _block((10, 12), (0, 10), (0, 6))
    assert grad(step, 1.0 - step) == pytest.approx(0.0, abs=1e-12)


def test_grad_and_sad_invariant_to_transposition_on_non_square_images():
    rng = np.random.default_rng(1)
    pred, gt = rng.random((9, 23)), _soft_disk(9, 23, 4, 11, 4)
    assert grad(pred.T, gt.T) == pytest.approx(grad(pred, gt), rel=1e-6)
    assert sad(pred.T, gt.T) == pytest.approx(sad(pred, gt), rel=1e-12)


# ------------------------------------------------------------------------------------------------------------------
# CONN
# ------------------------------------------------------------------------------------------------------------------


def test_conn_missed_object_counts_fully():
    gt = _block((6, 6), (2, 4), (2, 4))
    # Empty intersection at t = 0.1: Omega empty, every pixel gets l = 0, each gt pixel contributes |0 - 1|.
    assert conn(np.zeros_like(gt), gt) == pytest.approx(4 / 1000, rel=1e-6)
    # The ports score it 0: GCA's largest "component" is the background, GFM skips empty thresholds.
    assert conn(np.zeros_like(gt), gt, variant="gca") == 0.0
    assert conn(np.zeros_like(gt), gt, variant="gfm") == 0.0


def test_conn_background_label_excluded():
    gt = _block((6, 6), (2, 4), (2, 4))
    pred = 0.35 * gt
    # Omega = the block up to t = 0.3, empty at 0.4: l = 0.3 on the block; phi(pred) = 1 (d = 0.05 < 0.15),
    # phi(gt) = 1 - 0.7: 0.7 per block pixel. Background pixels: l = 0, alphas 0, no error.
    assert conn(pred, gt) == pytest.approx(4 * 0.7 / 1000, rel=1e-6)
    # GCA's port takes the (larger) background as Omega: the block gets l = 0 and CONN = SAD = 4 * 0.65.
    assert conn(pred, gt, variant="gca") == pytest.approx(4 * 0.65 / 1000, rel=1e-6)
    # GFM's port skips the empty thresholds: the block keeps l = 1 and phi = 1 for both.
    assert conn(pred, gt, variant="gfm") == pytest.approx(0.0, abs=1e-12)


def test_conn_uses_4_connectivity():
    # Two blocks touching at a corner: one 8-connected component, two 4-connected ones (4 and 6 pixels).
    gt = _block((6, 7), (2, 4), (2, 5), base=_block((6, 7), (0, 2), (0, 2)))
    pred = 0.35 * gt
    # 4-connectivity: Omega = the 6-pixel block until t = 0.3 (l = 0.3: 0.7 each); the 4-pixel block gets
    # l = 0 at t = 0.1 (|0.65 - 0| each). With 8-connectivity all 10 pixels would cost 0.7.
    assert conn(pred, gt) == pytest.approx((6 * 0.7 + 4 * 0.65) / 1000, rel=1e-6)


def test_conn_ties_go_to_the_first_component_in_column_major_order():
    # Two equal squares: A first in row-major order (top right), B first in column-major order (bottom left).
    gt = _block((8, 8), (0, 2), (5, 7), base=_block((8, 8), (5, 7), (0, 2)))
    pred = _block((8, 8), (0, 2), (5, 7), 0.5, base=_block((8, 8), (5, 7), (0, 2), 0.35))
    # MATLAB keeps B up to t = 0.3 (A gets l = 0: 0.5 each), then A alone until 0.5; B gets l = 0.3: 0.7 each.
    assert conn(pred, gt) == pytest.approx((4 * 0.5 + 4 * 0.7) / 1000, rel=1e-6)
    # Transposed, A comes first: A keeps l = 0.5 (0.5 each), B gets l = 0 (0.65 each).
    assert conn(pred.T, gt.T) == pytest.approx((4 * 0.5 + 4 * 0.65) / 1000, rel=1e-6)
    # GFM ties go row-major (A), and its skipped empty thresholds leave A at l = 1 (no error).
    assert conn(pred, gt, variant="gfm") == pytest.approx(4 * 0.65 / 1000, rel=1e-6)


def test_conn_threshold_ties_in_single_precision():
    gt = _block((5, 5), (1, 3), (1, 3))
    # uint8 153 is 0.6 in float64, below np.arange's 0.6000000000000001, but single(153) / 255 = 0.60000002
    # passes t = 0.6 in MATLAB: l = 0.6, phi(pred) = 1, phi(gt) = 0.6 (a float64 port would give l = 0.5: 0.5).
    assert conn(_block((5, 5), (1, 3), (1, 3), 153 / 255), gt) == pytest.approx(4 * 0.4 / 1000, rel=1e-6)
    # 0.7 becomes single(0.7) = 0.69999999 < 0.7, but MATLAB (and Octave) compare single with double in single
    # precision, so it passes t = 0.7: l = 0.7, phi(pred) = 1, phi(gt) = 0.7 (a float64 comparison: l = 0.6, 0.4).
    assert conn(_block((5, 5), (1, 3), (1, 3), 0.7), gt) == pytest.approx(4 * 0.3 / 1000, rel=1e-6)


@pytest.mark.parametrize("seed", range(6))
def test_conn_matches_line_by_line_reference(seed):
    rng = np.random.default_rng(seed)
    h, w = rng.integers(5, 13, size=2)
    gt = _quantise(np.clip(rng.random((h, w)) * 1.6 - 0.3, 0, 1))
    pred = np.clip(gt + rng.choice([-0.4, -0.1, 0.0, 0.2], size=(h, w)), 0, 1)
    if seed % 2:
        pred = _quantise(pred)
    assert conn(pred, gt) == pytest.approx(_reference_conn(pred, gt), rel=1e-6, abs=1e-12)


# ------------------------------------------------------------------------------------------------------------------
# All four against the unmodified DIM MATLAB files run in Octave 7.3 + octave-image 2.14
# ------------------------------------------------------------------------------------------------------------------


def _octave_cases():
    gt_a = _quantise(_soft_disk(24, 31, 11, 14, 7))
    pred_a = 0.9 * _soft_disk(24, 31, 12.5, 16, 7)
    pred_a[2:5, 25:29] = 0.6
    pred_a = _quantise(pred_a)
    gt_b = _quantise(np.maximum(_soft_disk(17, 40, 8, 9, 5, 1.5), _soft_disk(17, 40, 9, 30, 6, 3.0)))
    pred_b = _quantise(np.maximum(_soft_disk(17, 40, 8, 10, 4, 1.5), 0.7 * _soft_disk(17, 40, 10, 29, 6, 3.0)))
    pred_c = 0.2 + 0.6 * _soft_disk(17, 40, 8, 10, 4, 1.5)
    mask = np.zeros((24, 31), dtype=bool)
    mask[3:21, 5:28] = True
    return {
        "a": (pred_a, gt_a, None),
        "a_masked": (pred_a, gt_a, mask),
        "b": (pred_b, gt_b, None),
        "c": (pred_c, gt_b, None),
    }


# evaluate.m's numbers (SAD, MSE, GRAD / 1000, CONN / 1000) on 255 * alpha, trimap = 128 on the region.
OCTAVE_VALUES = {
    "a": (0.08103138953, 0.05490427092, 0.4047019482, 0.07638432831),
    "a_masked": (0.07743136585, 0.09345114231, 0.3558535874, 0.07278431207),
    "b": (0.07707843184, 0.04995154217, 0.2639737129, 0.08519607037),
    "c": (0.1958940774, 0.1273669451, 0.7073385119, 0.1961920857),
}


@pytest.mark.parametrize("name", sorted(OCTAVE_VALUES))
def test_matches_dim_matlab_code_run_in_octave(name):
    pred, gt, mask = _octave_cases()[name]
    values = all_metrics(pred, gt, mask)
    # MATLAB sums in single precision: agreement to ~1e-6 relative.
    for metric, expected in zip(METRIC_NAMES, OCTAVE_VALUES[name]):
        assert values[metric] == pytest.approx(expected, rel=1e-5), metric


def test_all_metrics_equals_the_single_functions():
    pred, gt, mask = _octave_cases()["a_masked"]
    values = all_metrics(pred, gt, mask, grad_variant="gfm", conn_variant="gca")
    assert values == {
        "sad": sad(pred, gt, mask),
        "mse": mse(pred, gt, mask),
        "grad": grad(pred, gt, mask, variant="gfm"),
        "conn": conn(pred, gt, mask, variant="gca"),
    }


def test_gfm_grad_scale_is_close_to_matlab():
    # GFM's scipy kernel with sum / 10 lands within a few percent of MATLAB's / 1000 (documented 3-6 % above).
    pred, gt, _ = _octave_cases()["b"]
    ratio = grad(pred, gt, variant="gfm") / grad(pred, gt)
    assert 0.9 < ratio < 1.15


# ------------------------------------------------------------------------------------------------------------------
# Input checks
# ------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("metric", [sad, mse, grad, conn])
def test_bad_inputs_raise_clear_errors(metric):
    ok = np.zeros((4, 5))
    with pytest.raises(ValueError, match=r"\[0, 1\].*divide it by 255"):
        metric(ok + 2.0, ok)
    with pytest.raises(ValueError, match="`gt` must have values in"):
        metric(ok, ok - 0.1)
    with pytest.raises(ValueError, match="NaN"):
        metric(np.full((4, 5), np.nan), ok)
    with pytest.raises(ValueError, match=r"`pred` has shape \(4, 5\) but `gt` has shape \(5, 4\)"):
        metric(ok, ok.T)
    with pytest.raises(ValueError, match="2-D"):
        metric(ok[None], ok[None])
    with pytest.raises(TypeError, match="divide 8-bit alphas by 255"):
        metric(ok.astype(np.uint8), ok)
    with pytest.raises(TypeError, match="`mask` must be a boolean array"):
        metric(ok, ok, np.ones((4, 5)))
    with pytest.raises(ValueError, match="`mask` has shape"):
        metric(ok, ok, np.ones((5, 4), dtype=bool))


def test_unknown_variant_raises():
    with pytest.raises(ValueError, match="variant"):
        grad(np.zeros((3, 3)), np.zeros((3, 3)), variant="mmeval")
    with pytest.raises(ValueError, match="variant"):
        MattingMetrics(conn_variant="GCA")


def test_torch_tensors_accepted():
    pred, gt, mask = _octave_cases()["a_masked"]
    expected = all_metrics(pred, gt, mask)
    got = all_metrics(torch.from_numpy(pred).float(), torch.from_numpy(gt), torch.from_numpy(mask))
    for metric in METRIC_NAMES:
        assert got[metric] == pytest.approx(expected[metric], rel=1e-4)


# ------------------------------------------------------------------------------------------------------------------
# MattingMetrics
# ------------------------------------------------------------------------------------------------------------------


def _samples(n, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        gt = _quantise(_soft_disk(16, 20, rng.uniform(4, 12), rng.uniform(4, 16), rng.uniform(3, 6)))
        pred = np.clip(gt + 0.2 * rng.standard_normal(gt.shape), 0, 1)
        out.append((pred, gt))
    return out


def _expected_means(samples, **variants):
    rows = [all_metrics(p, g, **variants) for p, g in samples]
    return {metric: float(np.mean([row[metric] for row in rows])) for metric in METRIC_NAMES}


def test_matting_metrics_means_over_samples_and_batches():
    samples = _samples(5)
    metrics = MattingMetrics(conn_variant="gfm")
    last = metrics.update(*samples[0])
    assert last == all_metrics(*samples[0], conn_variant="gfm")
    preds = torch.from_numpy(np.stack([p for p, _ in samples[1:]]))[:, None]  # (B, 1, H, W) tensor
    metrics.update(preds, np.stack([g for _, g in samples[1:]]))
    assert metrics.num_samples == 5
    got, expected = metrics.compute(), _expected_means(samples, conn_variant="gfm")
    assert got == pytest.approx(expected, rel=1e-6)
    metrics.reset()
    assert metrics.num_samples == 0 and all(math.isnan(v) for v in metrics.compute().values())


def test_matting_metrics_mask_and_batch_errors():
    (pred, gt), _ = _samples(2)
    mask = np.zeros(gt.shape, dtype=bool)
    mask[4:10] = True
    metrics = MattingMetrics()
    metrics.update(pred, gt, mask)
    assert metrics.compute() == pytest.approx(all_metrics(pred, gt, mask), rel=1e-9)
    with pytest.raises(ValueError, match="holds 2 samples but `gt` holds 1"):
        metrics.update(np.stack([pred, pred]), gt)
    with pytest.raises(ValueError, match=r"\(H, W\), \(B, H, W\) or \(B, 1, H, W\)"):
        metrics.update(pred[None, None, None], gt)


class _ThreadProcessGroup:
    """Stands in for torch.distributed: each "rank" thread's gather waits for all, then gets the concatenation."""

    def __init__(self, world_size):
        self.slots = [None] * world_size
        self.barrier = threading.Barrier(world_size, timeout=30)

    def gather_fn(self, rank):
        def gather(tensor):
            self.slots[rank] = tensor
            self.barrier.wait()
            return torch.cat(self.slots)

        return gather


def _compute_on_ranks(shards, make_metrics):
    results = [None] * len(shards)

    def run(rank):
        metrics = make_metrics(rank)
        for pred, gt in shards[rank]:
            metrics.update(pred, gt)
        results[rank] = metrics.compute()

    threads = [threading.Thread(target=run, args=(rank,)) for rank in range(len(shards))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def test_matting_metrics_gathers_sums_and_counts_before_reducing():
    samples = _samples(4, seed=3)
    shards = [
        samples[:3],
        samples[3:],
    ]  # uneven: a mean of per-process means would be wrong
    group = _ThreadProcessGroup(2)
    results = _compute_on_ranks(shards, lambda rank: MattingMetrics(gather_fn=group.gather_fn(rank)))
    expected = _expected_means(samples)
    for result in results:
        assert result == pytest.approx(expected, rel=1e-9)


def test_matting_metrics_uses_accelerator_gather_and_device():
    class FakeAccelerator:
        device = torch.device("cpu")

        def __init__(self, gather):
            self.gather = gather

    samples = _samples(3, seed=4)
    group = _ThreadProcessGroup(2)
    results = _compute_on_ranks(
        [samples[:1], samples[1:]],
        lambda rank: MattingMetrics(accelerator=FakeAccelerator(group.gather_fn(rank))),
    )
    assert results[0] == results[1] == pytest.approx(_expected_means(samples), rel=1e-9)


def _accelerate_worker(rank, world_size, port, out_dir):
    from accelerate import Accelerator

    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        RANK=str(rank),
        LOCAL_RANK=str(rank),
        WORLD_SIZE=str(world_size),
        LOCAL_WORLD_SIZE=str(world_size),
    )
    accelerator = Accelerator(cpu=True)
    assert accelerator.num_processes == world_size
    metrics = MattingMetrics(accelerator=accelerator)
    for pred, gt in _samples(5, seed=7)[rank::world_size]:  # 3 and 2 samples
        metrics.update(pred, gt)
    result = metrics.compute()
    np.save(
        os.path.join(out_dir, f"rank{rank}.npy"),
        np.array([result[m] for m in METRIC_NAMES]),
    )
    accelerator.end_training()


@pytest.mark.slow
def test_matting_metrics_real_two_process_accelerate_run():
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with tempfile.TemporaryDirectory() as tmp:
        mp.spawn(_accelerate_worker, args=(2, port, tmp), nprocs=2, join=True)
        expected = _expected_means(_samples(5, seed=7))
        for rank in range(2):
            got = np.load(os.path.join(tmp, f"rank{rank}.npy"))
            np.testing.assert_allclose(got, [expected[m] for m in METRIC_NAMES], rtol=1e-9)
