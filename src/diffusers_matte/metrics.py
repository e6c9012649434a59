# Copyright 2026 The diffusers-matte authors. Licensed under the Apache License, Version 2.0.
"""Alpha-matte error measures SAD, MSE, GRAD and CONN (Rhemann et al., CVPR 2009).

The default numbers are those of the Deep Image Matting (DIM) MATLAB evaluation code by Ning Xu (2018), the code
behind Composition-1k tables, with the scales of its ``evaluate.m``: SAD / 1000, MSE raw, GRAD / 1000, CONN / 1000.
Its conventions are reproduced exactly; alphas in [0, 1] stand for the 0..255 images ``255 * alpha`` it reads:

- the element-wise work runs in single precision, as MATLAB's ``single()`` casts make it; only the final sums are
  accumulated in float64 (MATLAB sums in single; checked against the unmodified MATLAB files run in Octave, the
  results agree to ~1e-6 relative);
- GRAD min-max normalises each alpha first (``mat2gray``), filters with the 9x9 L2-normalised derivative-of-Gaussian
  of ``gaussgradient.m`` (sigma 1.4, replicated borders) and sums the squared difference of gradient *magnitudes*;
- CONN thresholds at 0.1, 0.2, ..., 1 in single precision (uint8 153 passes 0.6; an exact 0.7 passes 0.7, as
  MATLAB and Octave compare single with double in single precision), keeps the largest 4-connected component of
  the intersection (background excluded, ties to the component first in column-major order, an empty
  intersection gives an empty component) and sums ``|phi(pred) - phi(gt)|`` with theta = 0.15, p = 1;
- an empty region gives MSE NaN (MATLAB's 0/0) and SAD = GRAD = CONN = 0.

Inputs must be float (H, W) arrays or tensors in [0, 1]; 8-bit images, NaNs, values outside [0, 1] and mismatched
shapes raise errors. For the DIM trimap protocol pass ``mask=trimap == 128``; ``mask=None`` is the whole image
(the RefMatte / RIM convention).

``grad`` and ``conn`` also reproduce, on request only, two Python code families that published tables used:
``variant="gca"`` (Yaoyi Li's port in GCA-Matting / MGMatting / MatteFormer / Matting-Anything / SDMatte) and
``variant="gfm"`` (the whole-image functions of GFM / P3M / AIM). Their numbers differ from MATLAB's, sometimes
a lot (CONN 0 for a missed object); use them only to compare with tables computed by that code.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Any, Callable, Dict, Optional, Sequence

import numpy as np
from scipy import ndimage

__all__ = [
    "METRIC_NAMES",
    "VARIANTS",
    "MattingMetrics",
    "all_metrics",
    "conn",
    "grad",
    "mse",
    "sad",
]

METRIC_NAMES = ("sad", "mse", "grad", "conn")
# "matlab" is the DIM evaluation code; the others are the Python code families named after their first repository.
VARIANTS = ("matlab", "gca", "gfm")

_F32_255 = np.float32(255.0)
_THETA = 0.15  # CONN: distance below which a pixel counts as fully connected (compute_connectivity_error.m)
_SIGMA = 1.4  # GRAD: derivative-of-Gaussian width (compute_gradient_loss.m)
_FOUR_CONNECTED = ndimage.generate_binary_structure(2, 1)
# CONN thresholds 0:0.1:1. The DIM code compares single alphas with them in single precision, where MATLAB's and
# NumPy's slightly different decimal values (0.6 vs 0.6000000000000001) round to the same float32.
_THRESHOLDS_F32 = np.array([k / 10 for k in range(11)], dtype=np.float32)
# The Python ports build them with np.arange, which yields 0.30000000000000004, 0.6000000000000001, ...
_THRESHOLDS_ARANGE = np.arange(0.0, 1.1, 0.1)


# ----------------------------------------------------------------------------------------------------------------
# Input checks
# ----------------------------------------------------------------------------------------------------------------


def _to_numpy(x: Any) -> np.ndarray:
    """Array view of a NumPy array or a torch tensor (floating tensors are converted to float64 on the CPU)."""
    if hasattr(x, "detach") and hasattr(x, "is_floating_point"):
        x = x.detach().cpu()
        x = x.double() if x.is_floating_point() else x
        return x.numpy()
    return np.asarray(x)


def _check_alpha(x: Any, name: str) -> np.ndarray:
    """Returns ``x`` as a float64 (H, W) array after checking it is a finite alpha matte in [0, 1]."""
    arr = _to_numpy(x)
    if arr.dtype.kind != "f":
        hint = " (divide 8-bit alphas by 255 first)" if arr.dtype.kind in "uib" else ""
        raise TypeError(f"`{name}` must be a float array with values in [0, 1], got dtype {arr.dtype}{hint}.")
    if arr.ndim != 2:
        raise ValueError(f"`{name}` must be a 2-D (H, W) alpha matte, got shape {arr.shape}.")
    if arr.size == 0:
        raise ValueError(f"`{name}` is empty (shape {arr.shape}).")
    arr = arr.astype(np.float64, copy=False)
    lo, hi = arr.min(), arr.max()
    if np.isnan(lo) or np.isnan(hi):
        raise ValueError(f"`{name}` contains NaN values.")
    if lo < 0.0 or hi > 1.0:
        raise ValueError(
            f"`{name}` must have values in [0, 1], got values in [{lo}, {hi}]"
            + (" (a 0..255 image? divide it by 255)." if hi > 1.0 else ".")
        )
    return arr


def _check_inputs(pred: Any, gt: Any, mask: Any) -> tuple:
    p, g = _check_alpha(pred, "pred"), _check_alpha(gt, "gt")
    if p.shape != g.shape:
        raise ValueError(f"`pred` has shape {p.shape} but `gt` has shape {g.shape}; they must match.")
    if mask is None:
        return p, g, None
    m = _to_numpy(mask)
    if m.dtype != np.bool_:
        raise TypeError(
            f"`mask` must be a boolean array (e.g. `trimap == 128` for the unknown region), got dtype {m.dtype}."
        )
    if m.shape != p.shape:
        raise ValueError(f"`mask` has shape {m.shape} but the alphas have shape {p.shape}; they must match.")
    return p, g, m


def _check_variant(variant: str) -> None:
    if variant not in VARIANTS:
        raise ValueError(f"`variant` must be one of {VARIANTS}, got {variant!r}.")


def _masked_sum(x: np.ndarray, mask: Optional[np.ndarray]) -> float:
    """Float64 sum of ``x`` over ``mask`` (everything when None)."""
    return float(np.sum(x if mask is None else x[mask], dtype=np.float64))


def _single(alpha: np.ndarray) -> np.ndarray:
    """MATLAB's ``single(I)`` of the 0..255 image ``I = 255 * alpha`` that the DIM code reads."""
    return (alpha * 255.0).astype(np.float32)


# ----------------------------------------------------------------------------------------------------------------
# SAD and MSE
# ----------------------------------------------------------------------------------------------------------------


def _sad(P: np.ndarray, G: np.ndarray, mask: Optional[np.ndarray]) -> float:
    """``P``, ``G``: the :func:`_single` images. compute_sad_loss.m: abs(P - G) / 255, summed, / 1000."""
    err = np.abs(P - G)
    err /= _F32_255
    return _masked_sum(err, mask) / 1000.0


def _mse(P: np.ndarray, G: np.ndarray, mask: Optional[np.ndarray]) -> float:
    """compute_mse_loss.m: ((P - G) / 255) .^ 2, summed, / number of region pixels."""
    count = P.size if mask is None else int(np.count_nonzero(mask))
    if count == 0:
        return float("nan")  # MATLAB's 0 / 0
    err = P - G
    err /= _F32_255
    err *= err
    return _masked_sum(err, mask) / count


def sad(pred: Any, gt: Any, mask: Any = None) -> float:
    """Sum of absolute differences, in thousands: ``sum(|pred - gt|) / 1000`` over ``mask``.

    Args:
        pred: predicted alpha, float (H, W) array or tensor with values in [0, 1].
        gt: ground-truth alpha, same shape and range.
        mask: boolean (H, W) array restricting the sum (``trimap == 128`` for the DIM protocol); None sums over
            the whole image.

    Returns:
        The DIM ``compute_sad_loss`` value (already divided by 1000).
    """
    p, g, m = _check_inputs(pred, gt, mask)
    return _sad(_single(p), _single(g), m)


def mse(pred: Any, gt: Any, mask: Any = None) -> float:
    """Mean squared error over ``mask`` (raw, not multiplied by 1e3), as DIM's ``compute_mse_loss``.

    Arguments as in :func:`sad`. An empty ``mask`` gives NaN, as MATLAB's 0/0 does.
    """
    p, g, m = _check_inputs(pred, gt, mask)
    return _mse(_single(p), _single(g), m)


# ----------------------------------------------------------------------------------------------------------------
# GRAD
# ----------------------------------------------------------------------------------------------------------------


@lru_cache(maxsize=None)
def _gaussgradient_factors(sigma: float = _SIGMA, epsilon: float = 1e-2) -> tuple:
    """1-D factors (smoothing, derivative) of ``gaussgradient.m``'s 2-D kernel.

    The kernel is ``h[i, j] = G(u_i) G'(u_j)`` scaled to unit L2 norm, u = -half..half with
    ``half = ceil(sigma sqrt(-2 ln(sqrt(2 pi) sigma epsilon)))`` (9 taps for sigma 1.4). It is an outer product,
    so the normalisation splits into the norms of the two factors and the filter is separable.
    """
    half = math.ceil(sigma * math.sqrt(-2.0 * math.log(math.sqrt(2.0 * math.pi) * sigma * epsilon)))
    u = np.arange(-half, half + 1, dtype=np.float64)
    gauss = np.exp(-(u**2) / (2.0 * sigma**2)) / (sigma * math.sqrt(2.0 * math.pi))
    dgauss = -u * gauss / sigma**2
    return gauss / np.linalg.norm(gauss), dgauss / np.linalg.norm(dgauss)


def _dim_gradient_magnitude_t(alpha: np.ndarray, normalize: bool) -> np.ndarray:
    """``sqrt(gx^2 + gy^2)`` of ``gaussgradient(alpha, 1.4)`` (true convolution, replicated borders), transposed.

    scipy filters along rows several times faster than along columns, so the column passes run on transposed
    copies and the result comes back as a (W, H) array.
    """
    if normalize:
        # mat2gray: min-max to [0, 1]; a constant image has zero gradient either way.
        lo, hi = alpha.min(), alpha.max()
        if hi == lo:
            return np.zeros(alpha.shape[::-1])
        alpha = (alpha - lo) / (hi - lo)
    smooth, deriv = _gaussgradient_factors()
    dx = ndimage.convolve1d(alpha, deriv, axis=1, mode="nearest").T.copy()
    sx = ndimage.convolve1d(alpha, smooth, axis=1, mode="nearest").T.copy()
    gx = ndimage.convolve1d(dx, smooth, axis=1, mode="nearest", output=dx)
    gy = ndimage.convolve1d(sx, deriv, axis=1, mode="nearest")
    gx *= gx
    gy *= gy
    gx += gy
    return np.sqrt(gx, out=gx)


def _gfm_gradient_magnitude(alpha: np.ndarray) -> np.ndarray:
    """GFM's gradient: scipy's unit-gain Gaussian derivative (13 taps, reflected borders), float32 output."""
    gx = ndimage.gaussian_filter(alpha, sigma=_SIGMA, order=[1, 0], output=np.float32)
    gy = ndimage.gaussian_filter(alpha, sigma=_SIGMA, order=[0, 1], output=np.float32)
    return np.sqrt(gx**2 + gy**2)


def _grad(p: np.ndarray, g: np.ndarray, mask: Optional[np.ndarray], variant: str = "matlab") -> float:
    if variant == "gfm":  # sum / 10, on raw [0, 1] alphas
        err = np.square(_gfm_gradient_magnitude(p) - _gfm_gradient_magnitude(g))
        return _masked_sum(err, mask) / 10.0
    mask_t = None if mask is None else mask.T  # the magnitudes come transposed
    if variant == "gca":  # no mat2gray, float64 throughout
        err = (_dim_gradient_magnitude_t(p, False) - _dim_gradient_magnitude_t(g, False)) ** 2
        return _masked_sum(err, mask_t) / 1000.0
    # compute_gradient_loss.m: (single(pred_amp) - single(target_amp)) .^ 2, summed; evaluate.m divides by 1000.
    err = _dim_gradient_magnitude_t(p, True).astype(np.float32)
    err -= _dim_gradient_magnitude_t(g, True).astype(np.float32)
    err *= err
    return _masked_sum(err, mask_t) / 1000.0


def grad(pred: Any, gt: Any, mask: Any = None, *, variant: str = "matlab") -> float:
    """Gradient error: squared difference of Gaussian-gradient magnitudes, summed over ``mask``, / 1000.

    Arguments as in :func:`sad`, plus:
        variant: ``"matlab"`` (default) is DIM's ``compute_gradient_loss`` / 1000: each alpha is min-max
            normalised (``mat2gray``) first. The others are for comparison with tables made by those code
            families only: ``"gca"`` (Yaoyi Li's Python port: no min-max normalisation, else as MATLAB) and
            ``"gfm"`` (GFM/P3M/AIM whole-image code: scipy ``gaussian_filter(sigma=1.4, order=1)`` on the raw
            alphas and sum / 10, about 3-6 % above MATLAB).
    """
    _check_variant(variant)
    return _grad(*_check_inputs(pred, gt, mask), variant=variant)


# ----------------------------------------------------------------------------------------------------------------
# CONN
# ----------------------------------------------------------------------------------------------------------------


def _largest_component(inter: np.ndarray, variant: str) -> Optional[np.ndarray]:
    """The component Omega kept at one threshold; None means "skip this threshold"."""
    labels, count = ndimage.label(inter, structure=_FOUR_CONNECTED)
    if variant == "gca":
        # The port's argmax also sees the background label 0 and picks it when it is largest.
        return labels == np.argmax(np.bincount(labels.ravel()))
    if count == 0:
        # Empty intersection: the guarded DIM code keeps an empty Omega, GFM `continue`s.
        return None if variant == "gfm" else np.zeros_like(inter)
    if count == 1:
        return inter
    sizes = np.bincount(labels.ravel())
    # Background excluded; argmax takes the first of equal sizes, in label (scan) order.
    sizes[0] = 0
    return labels == np.argmax(sizes)


def _conn_levels(p: np.ndarray, g: np.ndarray, thresholds: np.ndarray, variant: str) -> np.ndarray:
    """Index into ``thresholds`` of each pixel's level l: the last threshold before it left Omega, or the last."""
    level = np.full(p.shape, len(thresholds) - 1, dtype=np.int8)
    pending = np.ones(p.shape, dtype=bool)
    for i in range(1, len(thresholds)):
        omega = _largest_component((p >= thresholds[i]) & (g >= thresholds[i]), variant)
        if omega is None:
            continue
        level[pending & ~omega] = i - 1
        pending &= omega
        if not pending.any():  # every later step would assign nothing
            break
    return level


def _phi_error(p: np.ndarray, g: np.ndarray, l_map: np.ndarray) -> np.ndarray:
    """``|phi(p) - phi(g)|``, ``phi = 1 - d [d >= theta]``, ``d = alpha - l``, in the operations' dtype."""
    dp, dg = p - l_map, g - l_map
    dp *= dp >= _THETA
    dg *= dg >= _THETA
    np.subtract(1, dp, out=dp)
    np.subtract(1, dg, out=dg)
    dp -= dg
    return np.abs(dp, out=dp)


def _conn(
    p: np.ndarray,
    g: np.ndarray,
    mask: Optional[np.ndarray],
    variant: str = "matlab",
    singles: Optional[tuple] = None,
) -> float:
    """``singles``: the :func:`_single` images of ``p`` and ``g`` when already at hand."""
    if variant == "gfm":
        # float64 alphas, np.arange thresholds, float32 l map, row-major ties.
        level = _conn_levels(p, g, _THRESHOLDS_ARANGE, variant)
        err = _phi_error(p, g, _THRESHOLDS_ARANGE.astype(np.float32)[level].astype(np.float64))
        return _masked_sum(err, mask) / 1000.0
    P, G = singles if singles is not None else (_single(p), _single(g))
    if variant == "gca":
        # float32 alphas compared with float64 np.arange thresholds (NumPy >= 2), float64 l.
        p32, g32 = P / _F32_255, G / _F32_255
        level = _conn_levels(p32, g32, _THRESHOLDS_ARANGE, variant)
        err = _phi_error(p32.astype(np.float64), g32.astype(np.float64), _THRESHOLDS_ARANGE[level])
        return _masked_sum(err, mask) / 1000.0
    # compute_connectivity_error.m, single(pred) / 255 etc. in single precision. bwconncomp numbers components in
    # column-major order, so label the transposed images: the first maximum is then MATLAB's `max` pick.
    p32, g32 = (P / _F32_255).T.copy(), (G / _F32_255).T.copy()
    level = _conn_levels(p32, g32, _THRESHOLDS_F32, variant)
    err = _phi_error(p32, g32, _THRESHOLDS_F32[level])
    return _masked_sum(err, None if mask is None else mask.T) / 1000.0


def conn(pred: Any, gt: Any, mask: Any = None, *, variant: str = "matlab") -> float:
    """Connectivity error, summed over ``mask``, / 1000.

    Arguments as in :func:`sad`, plus:
        variant: ``"matlab"`` (default) is DIM's ``compute_connectivity_error(pred, gt, trimap, 0.1)`` / 1000.
            The others are for comparison with tables made by those code families only: ``"gca"`` (Yaoyi Li's
            Python port, whose largest component counts the background label, so a missed or empty prediction
            scores 0) and ``"gfm"`` (GFM/P3M/AIM whole-image code, which skips thresholds with an empty
            intersection, so pixels there keep l = 1; ties go to the first component in row-major order).
    """
    _check_variant(variant)
    return _conn(*_check_inputs(pred, gt, mask), variant=variant)


def all_metrics(
    pred: Any,
    gt: Any,
    mask: Any = None,
    *,
    grad_variant: str = "matlab",
    conn_variant: str = "matlab",
) -> Dict[str, float]:
    """The four measures of one pair at once (inputs checked once): ``{"sad", "mse", "grad", "conn"}``.

    Arguments as in :func:`sad`, :func:`grad` and :func:`conn`.
    """
    _check_variant(grad_variant)
    _check_variant(conn_variant)
    p, g, m = _check_inputs(pred, gt, mask)
    P, G = _single(p), _single(g)
    return {
        "sad": _sad(P, G, m),
        "mse": _mse(P, G, m),
        "grad": _grad(p, g, m, grad_variant),
        "conn": _conn(p, g, m, conn_variant, singles=(P, G)),
    }


# ----------------------------------------------------------------------------------------------------------------
# Accumulator
# ----------------------------------------------------------------------------------------------------------------


class MattingMetrics:
    """Running means of SAD, MSE, GRAD and CONN over an evaluation set, optionally across processes.

    Each sample's four numbers are those of :func:`all_metrics`; :meth:`compute` returns their means over the
    samples, as DIM's ``evaluate.m`` does (an empty-mask MSE is NaN there and makes the MSE mean NaN here too).

    For distributed evaluation (``accelerate``, ``torch.distributed``), pass ``accelerator`` or ``gather_fn``:
    :meth:`compute` gathers every process's per-metric sums and sample count before dividing, so all processes
    get the means over the whole set. Each sample must then reach exactly one process: a distributed sampler that
    pads the last batch with repeated samples counts those twice (``DataLoaderConfiguration(even_batches=False)``
    avoids it).
    The alternative is to collect the predictions with ``accelerator.gather_for_metrics`` and feed them to a
    ``MattingMetrics`` *without* ``accelerator`` (every process then sees every sample once).

    Args:
        grad_variant: see :func:`grad`; ``"matlab"`` by default.
        conn_variant: see :func:`conn`; ``"matlab"`` by default.
        accelerator: an ``accelerate.Accelerator``; its ``gather`` and ``device`` are used.
        gather_fn: a function taking this process's tensor of shape (1, k) and returning the (num_processes, k)
            concatenation of all processes' tensors, in the manner of ``accelerator.gather``. Used when no
            ``accelerator`` is given.

    Example:
        >>> metrics = MattingMetrics()
        >>> for pred, gt in loader:  # (B, H, W) or (B, 1, H, W) alphas in [0, 1]
        ...     metrics.update(pred, gt)
        >>> metrics.compute()  # {"sad": ..., "mse": ..., "grad": ..., "conn": ...}
    """

    def __init__(
        self,
        grad_variant: str = "matlab",
        conn_variant: str = "matlab",
        accelerator: Any = None,
        gather_fn: Optional[Callable[[Any], Any]] = None,
    ):
        _check_variant(grad_variant)
        _check_variant(conn_variant)
        if accelerator is not None and not hasattr(accelerator, "gather"):
            raise TypeError(f"`accelerator` must have a `gather` method, got {type(accelerator).__name__}.")
        if gather_fn is not None and not callable(gather_fn):
            raise TypeError(f"`gather_fn` must be callable, got {type(gather_fn).__name__}.")
        self.grad_variant = grad_variant
        self.conn_variant = conn_variant
        self.accelerator = accelerator
        self.gather_fn = accelerator.gather if accelerator is not None else gather_fn
        self.reset()

    def reset(self) -> None:
        """Forgets every sample seen so far."""
        self._sums = np.zeros(len(METRIC_NAMES), dtype=np.float64)
        self._count = 0

    @property
    def num_samples(self) -> int:
        """Samples added on this process since the last reset."""
        return self._count

    def update(self, pred: Any, gt: Any, mask: Any = None) -> Dict[str, float]:
        """Adds one pair (H, W) or a batch (B, H, W) / (B, 1, H, W) of pairs; returns the last sample's values."""
        preds, gts = self._split(pred, "pred"), self._split(gt, "gt")
        if len(preds) != len(gts):
            raise ValueError(f"`pred` holds {len(preds)} samples but `gt` holds {len(gts)}.")
        masks = [None] * len(preds) if mask is None else self._split(mask, "mask")
        if len(masks) != len(preds):
            raise ValueError(f"`mask` holds {len(masks)} samples but `pred` holds {len(preds)}.")
        values: Dict[str, float] = {}
        for p, g, m in zip(preds, gts, masks):
            values = all_metrics(p, g, m, grad_variant=self.grad_variant, conn_variant=self.conn_variant)
            self._sums += [values[name] for name in METRIC_NAMES]
            self._count += 1
        return values

    @staticmethod
    def _split(x: Any, name: str) -> Sequence[np.ndarray]:
        arr = _to_numpy(x)
        if arr.ndim == 4 and arr.shape[1] == 1:
            arr = arr[:, 0]
        if arr.ndim == 2:
            return [arr]
        if arr.ndim == 3:
            return list(arr)
        raise ValueError(f"`{name}` must have shape (H, W), (B, H, W) or (B, 1, H, W), got {arr.shape}.")

    def compute(self) -> Dict[str, float]:
        """Means over all samples (of all processes when gathering); NaN for every metric if there are none."""
        totals = np.append(self._sums, self._count)
        if self.gather_fn is not None:
            totals = self._gather(totals)
        count = totals[-1]
        if count == 0:
            return {name: float("nan") for name in METRIC_NAMES}
        return {name: float(total / count) for name, total in zip(METRIC_NAMES, totals[:-1])}

    def _gather(self, totals: np.ndarray) -> np.ndarray:
        import torch

        device = torch.device(getattr(self.accelerator, "device", None) or "cpu")
        # MPS has no float64.
        dtype = torch.float32 if device.type == "mps" else torch.float64
        local = torch.as_tensor(totals, dtype=dtype).reshape(1, -1).to(device)
        gathered = self.gather_fn(local)
        gathered = torch.as_tensor(gathered).reshape(-1, local.shape[1])
        return gathered.sum(dim=0).double().cpu().numpy()
