# Copyright 2026 The diffusers-matte authors. Licensed under the Apache License, Version 2.0.
"""Sparse up-sampling module of the paper (Sec. 3.4 "Extend to High-resolution Inference", appendix 6.3).

The matting decoder works at the 512x512 processing resolution. This module lifts its alpha to the input's own
resolution with two interpolation-convolution groups in the manner of MGMatting's progressive refinement
(Yu et al., 2021): each group up-interpolates the current alpha, concatenates it with the up-interpolated context
feature of the decoder and with the image at the group's resolution, and convolves only where the alpha is
uncertain, 0.01 < alpha < 0.99 (appendix 6.3). Everywhere else the group's output is the interpolated alpha.

The convolutions are submanifold sparse convolutions: they read and write active pixels only, an inactive
neighbour counts as zero. Three interchangeable paths compute them with the same weights:

- `"torch"`: pure PyTorch. It gathers each active pixel's 3x3 neighbourhood from a neighbour table, multiplies
  by the kernel as one matrix, and scatters the result back. No compiled extension; CPU, CUDA and MPS; gradients.
- `"spconv"`: `spconv.pytorch.SubMConv2d` with the same weights, converted to spconv's (Cout, kH, kW, Cin)
  layout at call time. The CPU build of spconv (`pip install spconv`) runs forward only.
- `"dense"`: the reference, a plain `conv2d` over the whole image with the inactive pixels zeroed before and
  after every layer. Its cost grows with the image area; it is the "dense up-sampling" baseline of
  `benchmarks/benchmark_highres.py` and the ground truth of the tests.

Work and memory of the sparse paths, beyond the dense one-channel alpha maps and the input image, grow with the
number of uncertain pixels, not with the image area; a group with no uncertain pixel does no convolution.
"""

import contextlib
import functools
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import (
    ModelMixin,
)  # must be in this namespace: makes the class loadable
from diffusers.utils import BaseOutput
from torch import nn

SPARSE_REFINER_BACKENDS = ("auto", "torch", "spconv", "dense")


@functools.lru_cache(maxsize=None)
def is_spconv_available(device_type: str = "cpu") -> bool:
    """Whether spconv is installed and can run on `device_type` ("cpu" or "cuda"; never "mps").

    The CPU wheel (`spconv`) cannot run CUDA tensors, and the CUDA wheels (`spconv-cu12x`) need a CUDA build of
    torch; spconv has no MPS support.
    """
    if device_type not in ("cpu", "cuda"):
        return False
    try:
        import spconv.pytorch  # noqa: F401
        from spconv.cppconstants import CPU_ONLY_BUILD
    except Exception:  # a broken install (e.g. a CUDA wheel on a CPU-only torch) counts as absent
        return False
    return device_type == "cpu" or not CPU_ONLY_BUILD


def uncertain_mask(alpha: torch.Tensor, low: float = 0.01, high: float = 0.99) -> torch.Tensor:
    """Boolean mask of the pixels the refiner convolves: `low < alpha < high` (appendix 6.3)."""
    return (alpha > low) & (alpha < high)


@dataclass
class SparseMatteRefinerOutput(BaseOutput):
    """Output of [`SparseMatteRefiner`].

    Args:
        alpha (`torch.Tensor` of shape `(B, 1, H, W)`): the refined alpha matte in [0, 1] at the image's resolution.
        num_active (`tuple[int, ...]`): number of uncertain pixels each group convolved (all batch items together).
        sizes (`tuple[tuple[int, int], ...]`): the `(height, width)` each group worked at.
    """

    alpha: torch.Tensor
    num_active: tuple[int, ...]
    sizes: tuple[tuple[int, int], ...]


class SparseConvGroup(nn.Module):
    """One interpolation-convolution group: 3x3 convolutions with ReLU between them, one output channel.

    The weights are ordinary `nn.Conv2d` weights, (Cout, Cin, kH, kW); every backend reads this one copy.
    The last layer starts at zero, so an untrained group returns the interpolated alpha unchanged.
    """

    def __init__(self, in_channels: int, hidden_channels: tuple[int, ...], kernel_size: int):
        super().__init__()
        channels = (in_channels, *hidden_channels, 1)
        self.convs = nn.ModuleList(
            nn.Conv2d(i, o, kernel_size, padding=kernel_size // 2) for i, o in zip(channels[:-1], channels[1:])
        )
        nn.init.zeros_(self.convs[-1].weight)
        nn.init.zeros_(self.convs[-1].bias)

    def forward_dense(self, inputs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Reference: dense convolutions, inactive pixels zeroed before and after each layer (`mask` is 0/1)."""
        x = inputs * mask
        for i, conv in enumerate(self.convs):
            x = conv(x) * mask
            if i < len(self.convs) - 1:
                x = F.relu(x)
        return x

    def forward_torch(self, features: torch.Tensor, neighbours: torch.Tensor, chunk_size: int) -> torch.Tensor:
        """Pure-PyTorch submanifold convolutions over active-pixel features `(N, Cin)`, returns `(N, 1)`."""
        x = features
        for i, conv in enumerate(self.convs):
            x = _submanifold_conv(x, neighbours, conv.weight, conv.bias, chunk_size)
            if i < len(self.convs) - 1:
                x = F.relu(x)
        return x

    def forward_spconv(
        self,
        features: torch.Tensor,
        coords: torch.Tensor,
        size: tuple[int, int],
        batch_size: int,
    ) -> torch.Tensor:
        """The same convolutions with spconv's `SubMConv2d`, fed this group's weights; returns `(N, 1)`."""
        import spconv.pytorch as spconv

        # CPU builds support the Native algorithm only; on CUDA spconv picks its own.
        algo = spconv.ConvAlgo.Native if features.device.type == "cpu" else None
        # `nonzero()` may return a transposed view: spconv reads the raw buffer, so make it contiguous.
        x = spconv.SparseConvTensor(features, coords.int().contiguous(), list(size), batch_size)
        for i, conv in enumerate(self.convs):
            # A stand-in module run with our weights (functional_call), so gradients reach them on CUDA.
            kernel = spconv.SubMConv2d(
                conv.in_channels,
                conv.out_channels,
                conv.kernel_size,
                padding=conv.padding,
                bias=False,  # spconv's CPU inference kernel rejects a bias: added below
                indice_key="group",  # all layers share the active set: index pairs are built once
                algo=algo,
            ).to(features.device)
            kernel.train(self.training)
            weight = conv.weight.permute(0, 2, 3, 1).contiguous()  # (Cout, kH, kW, Cin)
            with _single_thread_on_cpu(features.device):
                x = torch.func.functional_call(kernel, {"weight": weight}, (x,))
            out = x.features + conv.bias
            if i < len(self.convs) - 1:
                out = F.relu(out)
            x = x.replace_feature(out)
        return x.features


@contextlib.contextmanager
def _single_thread_on_cpu(device: torch.device):
    """Run spconv's CPU kernels on one thread: with several, its Native gather/scatter returns wrong values.

    Measured with spconv 2.3.8 (CPU build), torch 2.13, 2 threads: from a few hundred active pixels up, some calls
    return features wrong by order 1 (intermittently, as a race does); on 1 thread every call matches the dense
    convolution. A matching upstream report: https://github.com/traveller59/spconv/issues/679.
    """
    if device.type != "cpu":
        yield
        return
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _submanifold_conv(
    features: torch.Tensor,
    neighbours: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    chunk_size: int,
) -> torch.Tensor:
    """Gather each active pixel's neighbourhood, multiply by the flattened kernel, in chunks of rows.

    `neighbours` is `(N, kH*kW)`, row-major over the kernel window, with `N` marking an inactive neighbour; it
    indexes a zero row appended to `features`. Peak extra memory is `chunk_size * kH*kW * Cin` values.
    """
    num_active, in_channels = features.shape
    out_channels = weight.shape[0]
    # (Cout, Cin, kH, kW) -> (kH*kW*Cin, Cout): rows ordered like the gathered window, channels fastest.
    matrix = weight.permute(2, 3, 1, 0).reshape(-1, out_channels)
    padded = torch.cat([features, features.new_zeros(1, in_channels)])
    chunks = []
    for start in range(0, num_active, chunk_size):
        rows = neighbours[start : start + chunk_size]
        # index_select: about 2x faster than advanced indexing for this row gather on CPU
        window = padded.index_select(0, rows.reshape(-1)).view(rows.shape[0], -1)
        chunks.append(window @ matrix if bias is None else torch.addmm(bias, window, matrix))
    return torch.cat(chunks)


class _ActiveSet:
    """The uncertain pixels of a `(B, H, W)` mask, as `(b, y, x)` coordinates sorted by flat index."""

    def __init__(self, mask: torch.Tensor):
        self.batch_size, self.height, self.width = mask.shape
        self.coords = mask.nonzero()  # (N, 3); row-major order, so the flat keys are sorted
        self.keys = self._flat(self.coords[:, 0], self.coords[:, 1], self.coords[:, 2])

    def __len__(self) -> int:
        return self.coords.shape[0]

    def _flat(self, b, y, x):
        return (b * self.height + y) * self.width + x

    def neighbours(self, kernel_size: int) -> torch.Tensor:
        """`(N, k*k)` index of each window position in the active list, `N` where the neighbour is inactive.

        Binary search in the sorted keys: memory grows with N, not with the image area.
        """
        b, y, x = self.coords.unbind(1)
        radius = kernel_size // 2
        num = len(self)
        columns = []
        for dy in range(-radius, radius + 1):
            for dx in range(-radius, radius + 1):
                ny, nx = y + dy, x + dx
                inside = (ny >= 0) & (ny < self.height) & (nx >= 0) & (nx < self.width)
                key = self._flat(b, ny, nx)
                pos = torch.searchsorted(self.keys, key).clamp_(max=num - 1)
                found = inside & (self.keys[pos] == key)
                columns.append(torch.where(found, pos, num))
        return torch.stack(columns, dim=1)


def _source_index(dst: torch.Tensor, in_size: int, out_size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Bilinear source taps and weight along one axis, as `F.interpolate(..., align_corners=False)` computes them."""
    scale = in_size / out_size
    src = ((dst.to(torch.float32) + 0.5) * scale - 0.5).clamp_(min=0)
    low = src.floor().long().clamp_(max=in_size - 1)
    high = (low + 1).clamp_(max=in_size - 1)
    return low, high, (src - low).clamp_(0, 1)


def _sample_bilinear(
    feature_nhwc: torch.Tensor,
    coords: torch.Tensor,
    out_size: tuple[int, int],
) -> torch.Tensor:
    """Values of `F.interpolate(feature, out_size, mode="bilinear")` at the pixels `coords` only, `(N, C)`."""
    _, in_h, in_w, channels = feature_nhwc.shape
    rows = feature_nhwc.reshape(-1, channels)
    b = coords[:, 0]
    y0, y1, wy = _source_index(coords[:, 1], in_h, out_size[0])
    x0, x1, wx = _source_index(coords[:, 2], in_w, out_size[1])
    wy, wx = wy.to(rows.dtype)[:, None], wx.to(rows.dtype)[:, None]

    def tap(y, x):
        return rows.index_select(0, (b * in_h + y) * in_w + x)

    top = tap(y0, x0) * (1 - wx) + tap(y0, x1) * wx
    bottom = tap(y1, x0) * (1 - wx) + tap(y1, x1) * wx
    return top * (1 - wy) + bottom * wy


def _resize_image(pixel_values: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """The image at a group's resolution: area averaging when shrinking, bilinear otherwise."""
    if tuple(pixel_values.shape[-2:]) == tuple(size):
        return pixel_values
    shrink = size[0] <= pixel_values.shape[-2] and size[1] <= pixel_values.shape[-1]
    if shrink:
        return F.interpolate(pixel_values, size=size, mode="area")
    return F.interpolate(pixel_values, size=size, mode="bilinear", align_corners=False)


class SparseMatteRefiner(ModelMixin, ConfigMixin):
    r"""Sparse up-sampling module: lifts the decoder's 512x512 alpha to the image's resolution (appendix 6.3).

    Each of the `num_groups` groups works at one resolution, the last at the image's, each earlier one
    `group_scale_factor` times smaller (never smaller than the input alpha, never larger than the image). A group
    takes the concatenation `[up(alpha), up(context), image]` and, at the uncertain pixels only, predicts a
    correction in logit space: `alpha = sigmoid(logit(up(alpha)) + delta)`. The logit is finite there because
    uncertain pixels lie strictly inside `(uncertain_low, uncertain_high)`; an untrained refiner (its last layers
    start at zero) is plain bilinear up-sampling.

    Args:
        context_channels (`int`, defaults to 32): channels of the decoder's context feature
            (`MattingDecoderOutput.hidden_states`, i.e. `fusion_channels[-1]`).
        image_channels (`int`, defaults to 3): channels of the image.
        hidden_channels (`tuple[int, ...]`, defaults to `(32, 16)`): widths of each group's hidden layers; a group
            has `len(hidden_channels) + 1` convolutions.
        num_groups (`int`, defaults to 2): interpolation-convolution groups (two in the paper).
        group_scale_factor (`float`, defaults to 2.0): resolution ratio between consecutive groups.
        kernel_size (`int`, defaults to 3): odd convolution kernel size.
        uncertain_low (`float`, defaults to 0.01): pixels with alpha above this ...
        uncertain_high (`float`, defaults to 0.99): ... and below this are refined (appendix 6.3).
    """

    @register_to_config
    def __init__(
        self,
        context_channels: int = 32,
        image_channels: int = 3,
        hidden_channels: tuple[int, ...] = (32, 16),
        num_groups: int = 2,
        group_scale_factor: float = 2.0,
        kernel_size: int = 3,
        uncertain_low: float = 0.01,
        uncertain_high: float = 0.99,
    ):
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError(f"`kernel_size` must be odd, got {kernel_size}.")
        if not 0.0 < uncertain_low < uncertain_high < 1.0:
            raise ValueError(
                "Need 0 < `uncertain_low` < `uncertain_high` < 1, got " f"{uncertain_low} and {uncertain_high}."
            )
        if num_groups < 1 or group_scale_factor < 1.0:
            raise ValueError(
                f"Need `num_groups` >= 1 and `group_scale_factor` >= 1, got {num_groups} and {group_scale_factor}."
            )
        in_channels = 1 + context_channels + image_channels
        self.groups = nn.ModuleList(
            SparseConvGroup(in_channels, tuple(hidden_channels), kernel_size) for _ in range(num_groups)
        )

    def group_sizes(self, alpha_size: tuple[int, int], image_size: tuple[int, int]) -> list[tuple[int, int]]:
        """`(height, width)` of each group, coarse to fine; the last is `image_size`."""
        sizes = []
        for g in range(self.config.num_groups):
            factor = self.config.group_scale_factor ** (self.config.num_groups - 1 - g)
            sizes.append(tuple(min(full, max(low, round(full / factor))) for low, full in zip(alpha_size, image_size)))
        return sizes

    def resolve_backend(self, backend: str, device: torch.device, needs_grad: bool) -> str:
        """The path `backend` means on `device`.

        `"auto"` takes spconv where it can run (CUDA with a CUDA build of spconv; CPU without gradients, as its
        CPU build has no backward pass) and the PyTorch path everywhere else (MPS, CPU training, no spconv). On
        CPU spconv needed 0.55-0.75x the CPU time of the PyTorch path (`benchmarks/results/highres_cpu.md`).
        """
        if backend not in SPARSE_REFINER_BACKENDS:
            raise ValueError(f"`backend` must be one of {SPARSE_REFINER_BACKENDS}, got {backend!r}.")
        spconv_ok = is_spconv_available(device.type) and not (device.type == "cpu" and needs_grad)
        if backend == "auto":
            return "spconv" if spconv_ok else "torch"
        if backend == "spconv" and not spconv_ok:
            if not is_spconv_available(device.type):
                raise ImportError(
                    f"backend='spconv' needs spconv for {device.type} tensors: `pip install spconv` (CPU) or "
                    "`pip install spconv-cu121` (CUDA 12.x); or use backend='torch'."
                )
            raise RuntimeError(
                "spconv's CPU build has no backward pass: use backend='torch' to train on CPU, or run under "
                "torch.no_grad()."
            )
        return backend

    def _check_inputs(self, pixel_values, alpha, context) -> None:
        for name, tensor, channels in (
            ("pixel_values", pixel_values, self.config.image_channels),
            ("alpha", alpha, 1),
            ("context", context, self.config.context_channels),
        ):
            if tensor.ndim != 4 or tensor.shape[1] != channels:
                raise ValueError(f"`{name}` must be (B, {channels}, H, W), got shape {tuple(tensor.shape)}.")
            if tensor.shape[0] != pixel_values.shape[0]:
                raise ValueError(
                    f"`{name}` has batch size {tensor.shape[0]}, `pixel_values` has {pixel_values.shape[0]}."
                )
        low, high = pixel_values.aminmax()
        if low < -1.0 - 1e-3 or high > 1.0 + 1e-3:
            raise ValueError(f"`pixel_values` must be normalised to [-1, 1], got values in [{low:.3g}, {high:.3g}].")

    def forward(
        self,
        pixel_values: torch.Tensor,
        alpha: torch.Tensor,
        context: torch.Tensor,
        backend: str = "auto",
        chunk_size: int = 32768,
        return_dict: bool = True,
    ) -> SparseMatteRefinerOutput | tuple:
        r"""Refine `alpha` up to the resolution of `pixel_values`.

        Args:
            pixel_values (`torch.Tensor` of shape `(B, 3, H, W)`): the image at the target resolution, normalised to
                [-1, 1] like [`MattingDecoder`]'s input.
            alpha (`torch.Tensor` of shape `(B, 1, h, w)`): the decoder's alpha in [0, 1], usually at 512x512.
            context (`torch.Tensor` of shape `(B, context_channels, h', w')`): the decoder's context feature
                (`MattingDecoderOutput.hidden_states`), any resolution, usually `h' = h`.
            backend (`str`, defaults to `"auto"`): `"torch"`, `"spconv"`, `"dense"` (reference, cost grows with
                the image area) or `"auto"` (spconv where it can run: CUDA, or CPU without gradients; else
                torch).
            chunk_size (`int`, defaults to 32768): active pixels gathered at once by the torch path; bounds its
                temporary memory to about `chunk_size * 9 * in_channels` values.
            return_dict (`bool`): return a [`SparseMatteRefinerOutput`] instead of a tuple.
        """
        self._check_inputs(pixel_values, alpha, context)
        if chunk_size < 1:
            raise ValueError(f"`chunk_size` must be positive, got {chunk_size}.")
        needs_grad = torch.is_grad_enabled() and (
            any(p.requires_grad for p in self.parameters())
            or any(t.requires_grad for t in (pixel_values, alpha, context))
        )
        backend = self.resolve_backend(backend, pixel_values.device, needs_grad)

        dtype = self.dtype
        alpha, context = alpha.to(dtype), context.to(dtype)
        sizes = self.group_sizes(tuple(alpha.shape[-2:]), tuple(pixel_values.shape[-2:]))
        # Gathering rows of a channels-last copy is faster than strided gathers; it is low resolution.
        context_nhwc = context.permute(0, 2, 3, 1).contiguous()
        num_active = []
        for group, size in zip(self.groups, sizes):
            alpha = F.interpolate(alpha, size=size, mode="bilinear", align_corners=False)
            image = _resize_image(pixel_values, size).to(dtype)
            if backend == "dense":
                alpha, active = self._group_dense(group, alpha, context, image)
            else:
                alpha, active = self._group_sparse(group, alpha, context_nhwc, image, backend, chunk_size)
            num_active.append(active)

        if not return_dict:
            return (alpha, tuple(num_active), tuple(sizes))
        return SparseMatteRefinerOutput(alpha=alpha, num_active=tuple(num_active), sizes=tuple(sizes))

    def _refine(self, alpha: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
        """Correction in logit space; `alpha` is strictly inside (uncertain_low, uncertain_high) here."""
        return torch.sigmoid(torch.logit(alpha) + delta)

    def _group_dense(self, group, alpha, context, image) -> tuple[torch.Tensor, int]:
        mask = uncertain_mask(alpha, self.config.uncertain_low, self.config.uncertain_high)
        context_up = F.interpolate(context, size=alpha.shape[-2:], mode="bilinear", align_corners=False)
        inputs = torch.cat([alpha, context_up, image], dim=1)
        del context_up
        delta = group.forward_dense(inputs, mask.to(alpha.dtype))
        del inputs
        # The logit is taken of a clamped copy so that certain pixels never produce inf (they are not used).
        safe = alpha.clamp(self.config.uncertain_low, self.config.uncertain_high)
        return torch.where(mask, self._refine(safe, delta), alpha), int(mask.sum())

    def _group_sparse(self, group, alpha, context_nhwc, image, backend, chunk_size) -> tuple[torch.Tensor, int]:
        mask = uncertain_mask(alpha[:, 0], self.config.uncertain_low, self.config.uncertain_high)
        active = _ActiveSet(mask)
        del mask
        if len(active) == 0:  # nothing uncertain: the interpolated alpha is the answer
            return alpha, 0
        b, y, x = active.coords.unbind(1)
        alpha_active = alpha[b, 0, y, x]
        features = torch.cat(
            [
                torch.cat(
                    [
                        alpha_active[s : s + chunk_size, None],
                        _sample_bilinear(
                            context_nhwc,
                            active.coords[s : s + chunk_size],
                            alpha.shape[-2:],
                        ),
                        image[
                            b[s : s + chunk_size],
                            :,
                            y[s : s + chunk_size],
                            x[s : s + chunk_size],
                        ],
                    ],
                    dim=1,
                )
                for s in range(0, len(active), chunk_size)
            ]
        )
        if backend == "spconv":
            delta = group.forward_spconv(features, active.coords, tuple(alpha.shape[-2:]), alpha.shape[0])
        else:
            neighbours = active.neighbours(self.config.kernel_size)
            delta = group.forward_torch(features, neighbours, chunk_size)
        del features
        refined = self._refine(alpha_active, delta[:, 0])
        alpha = alpha.index_put((b, torch.zeros_like(b), y, x), refined)
        return alpha, len(active)
