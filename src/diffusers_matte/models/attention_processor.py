# Copyright 2026 The diffusers-matte authors. Licensed under the Apache License, Version 2.0.
"""Optimised self-attention of the student (paper section 3.3) and attention-map capture (section 3.2.2).

`MatteAttnProcessor` is a diffusers attention processor. With `kv_downsample=k > 1` it computes keys and
values from a learnable k x k, stride-k convolution phi of the feature map while queries stay at full
resolution (K^S = W_K phi(f), V^S = W_V phi(f)); its weights live in the model's state dict under
`...attn1.processor.kv_down`. The fast path is `F.scaled_dot_product_attention`; the explicit softmax path
is used only while a recorder is attached, to hand the attention probabilities to the distillation losses.

`RemovedSelfAttention` stands in for a self-attention layer that the student drops entirely (factor -1).
"""

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from diffusers.models.attention_processor import Attention
from torch import nn

SPATIAL_SIZE_ATTR = "_matte_spatial_size"


def spatial_size_of(attn: Attention, num_tokens: int) -> tuple[int, int]:
    """The (height, width) grid of the tokens an attention layer sees.

    Set by a forward pre-hook on the parent `Transformer2DModel` (see `MatteUNet2DConditionModel`); a square
    grid is inferred when the layer is used outside such a model.
    """
    size = getattr(attn, SPATIAL_SIZE_ATTR, None)
    if size is not None and size[0] * size[1] == num_tokens:
        return size
    side = int(round(num_tokens**0.5))
    if side * side != num_tokens:
        raise ValueError(
            f"Cannot recover the spatial grid of {num_tokens} tokens: the attention layer was called outside "
            "a MatteUNet2DConditionModel and the grid is not square."
        )
    return side, side


class RemovedSelfAttention(nn.Module):
    """A self-attention layer removed from the student (factor -1 in `self_attention_kv_downsample`).

    The transformer block adds the attention output to its residual stream, so returning zeros removes the
    layer exactly; it holds no parameters.
    """

    def forward(self, hidden_states: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        return torch.zeros_like(hidden_states)


class MatteAttnProcessor(nn.Module):
    """Attention processor with optional down-sampled keys and values and optional map recording.

    Args:
        hidden_size: channels of the layer's input; required when `kv_downsample > 1`.
        kv_downsample: 1 for full attention; k > 1 computes K and V from a k x k, stride-k convolution of
            the feature map (self-attention only).
    """

    def __init__(self, hidden_size: int | None = None, kv_downsample: int = 1):
        super().__init__()
        if kv_downsample < 1:
            raise ValueError(f"`kv_downsample` must be >= 1, got {kv_downsample}.")
        if kv_downsample > 1 and hidden_size is None:
            raise ValueError("`hidden_size` is required when `kv_downsample` > 1.")
        self.kv_downsample = kv_downsample
        self.kv_down = None
        if kv_downsample > 1:
            self.kv_down = nn.Conv2d(hidden_size, hidden_size, kv_downsample, stride=kv_downsample)
            self.reset_kv_down_to_average()
        # Set by `MatteUNet2DConditionModel.capture`; not part of the state.
        self.recorder: "AttentionRecorder | None" = None
        self.layer_name: str | None = None
        # phi's weight in patch order, kept between calls without gradients (`patch_weight`); not part of the state
        self._patch_weight: tuple[tuple, torch.Tensor] | None = None

    @torch.no_grad()
    def reset_kv_down_to_average(self) -> None:
        """Initialise phi as k x k average pooling, so a freshly pruned student starts close to its teacher."""
        k = self.kv_downsample
        self.kv_down.weight.zero_()
        channels = torch.arange(self.kv_down.out_channels)
        self.kv_down.weight[channels, channels] = 1.0 / (k * k)
        self.kv_down.bias.zero_()

    def downsample(self, tokens: torch.Tensor, size: tuple[int, int]) -> tuple[torch.Tensor, tuple[int, int]]:
        """phi: (B, h*w, C) tokens -> (B, ceil(h/k)*ceil(w/k), C) tokens.

        Written as patchify + linear, which equals the strided convolution and is faster on CPU than
        `Conv2d` on NCHW. A patch lists its k x k tokens one after the other (row, column, then channel): gathering
        it copies runs of C contiguous values, where the convolution's own order (channel, row, column) made the
        copy cost as much as the GEMM (`benchmarks/results/attention_parts_cpu.md`); the weight is permuted to
        match (`patch_weight`). Grids that are not a multiple of k are padded by edge replication.
        """
        k = self.kv_downsample
        batch, _, channels = tokens.shape
        height, width = size
        grid = tokens.reshape(batch, height, width, channels)
        pad_h, pad_w = -height % k, -width % k
        if pad_h or pad_w:
            grid = F.pad(grid.permute(0, 3, 1, 2), (0, pad_w, 0, pad_h), mode="replicate").permute(0, 2, 3, 1)
            height, width = height + pad_h, width + pad_w
        hk, wk = height // k, width // k
        patches = grid.reshape(batch, hk, k, wk, k, channels).permute(0, 1, 3, 2, 4, 5)
        patches = patches.reshape(batch, hk * wk, k * k * channels)
        return F.linear(patches, self.patch_weight(), self.kv_down.bias), (hk, wk)

    def patch_weight(self) -> torch.Tensor:
        """phi's `(C_out, C_in, k, k)` convolution weight as `(C_out, k * k * C_in)` in patch order. Without
        gradients the permuted copy is kept until the parameter changes (its storage, version, dtype or device),
        so inference does not copy the weight at every call; with gradients it is taken afresh, differentiably."""
        weight = self.kv_down.weight
        if torch.is_grad_enabled():
            return weight.permute(0, 2, 3, 1).flatten(1)
        key = (weight.data_ptr(), weight._version, weight.dtype, weight.device)
        if self._patch_weight is None or self._patch_weight[0] != key:
            self._patch_weight = (key, weight.detach().permute(0, 2, 3, 1).flatten(1).contiguous())
        return self._patch_weight[1]

    def __call__(
        self,
        attn: Attention,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        temb: torch.Tensor | None = None,
    ) -> torch.Tensor:
        residual = hidden_states
        if attn.spatial_norm is not None:
            hidden_states = attn.spatial_norm(hidden_states, temb)
        input_ndim = hidden_states.ndim
        if input_ndim == 4:
            batch, channels, height, width = hidden_states.shape
            hidden_states = hidden_states.view(batch, channels, height * width).transpose(1, 2)
            setattr(attn, SPATIAL_SIZE_ATTR, (height, width))
        batch, num_queries, _ = hidden_states.shape
        query_size = spatial_size_of(attn, num_queries) if self.kv_down or self.recorder else None

        if attn.group_norm is not None:
            hidden_states = attn.group_norm(hidden_states.transpose(1, 2)).transpose(1, 2)
        query = attn.to_q(hidden_states)

        is_cross = encoder_hidden_states is not None
        key_size = query_size
        if is_cross:
            context = (
                attn.norm_encoder_hidden_states(encoder_hidden_states) if attn.norm_cross else encoder_hidden_states
            )
            key_size = None
        elif self.kv_down is not None:
            context, key_size = self.downsample(hidden_states, query_size)
        else:
            context = hidden_states
        key, value = attn.to_k(context), attn.to_v(context)

        head_dim = key.shape[-1] // attn.heads
        query, key, value = (t.view(batch, -1, attn.heads, head_dim).transpose(1, 2) for t in (query, key, value))
        if attn.norm_q is not None:
            query = attn.norm_q(query)
        if attn.norm_k is not None:
            key = attn.norm_k(key)
        if attention_mask is not None:
            attention_mask = attn.prepare_attention_mask(attention_mask, key.shape[2], batch)
            attention_mask = attention_mask.view(batch, attn.heads, -1, attention_mask.shape[-1])

        if self.recorder is None:
            hidden_states = F.scaled_dot_product_attention(
                query, key, value, attn_mask=attention_mask, scale=attn.scale
            )
        else:
            # Explicit softmax, only while capturing maps for distillation.
            scores = (query.float() @ key.float().transpose(-1, -2)) * attn.scale
            if attention_mask is not None:
                scores = scores + attention_mask.float()
            probs = scores.softmax(dim=-1)
            self.recorder.record(self.layer_name, probs, query_size, key_size, is_cross)
            hidden_states = (probs @ value.float()).to(query.dtype)

        hidden_states = hidden_states.transpose(1, 2).reshape(batch, -1, attn.heads * head_dim).to(query.dtype)
        hidden_states = attn.to_out[1](attn.to_out[0](hidden_states))
        if input_ndim == 4:
            hidden_states = hidden_states.transpose(-1, -2).reshape(batch, channels, height, width)
        if attn.residual_connection:
            hidden_states = hidden_states + residual
        return hidden_states / attn.rescale_output_factor


@dataclass
class AttentionRecord:
    """Head-averaged attention probabilities of one layer for one forward pass."""

    probs: torch.Tensor  # (B, N_query, N_key)
    query_size: tuple[int, int]
    key_size: tuple[int, int] | None  # None for cross-attention (keys are text tokens)
    is_cross: bool


@dataclass
class AttentionRecorder:
    """Collects attention maps by layer name; a recomputation (gradient checkpointing) overwrites its twin."""

    records: dict[str, AttentionRecord] = field(default_factory=dict)

    def record(self, name: str, probs: torch.Tensor, query_size, key_size, is_cross: bool) -> None:
        self.records[name] = AttentionRecord(probs.mean(dim=1), tuple(query_size), key_size, is_cross)

    def averaged(self, cross: bool) -> dict[tuple[int, int], torch.Tensor]:
        """Maps averaged over all layers whose queries lie on the same (h, w) grid (paper section 3.2.2)."""
        groups: dict[tuple[int, int], list[torch.Tensor]] = {}
        for record in self.records.values():
            if record.is_cross == cross:
                groups.setdefault(record.query_size, []).append(record.probs)
        return {size: torch.stack(maps).mean(dim=0) for size, maps in groups.items()}

    def key_sizes(self) -> dict[tuple[int, int], tuple[int, int]]:
        """Key grid of the self-attention maps at each query resolution."""
        sizes: dict[tuple[int, int], tuple[int, int]] = {}
        for record in self.records.values():
            if not record.is_cross:
                previous = sizes.setdefault(record.query_size, record.key_size)
                if previous != record.key_size:
                    raise ValueError(
                        f"Self-attention layers at resolution {record.query_size} have different key grids "
                        f"({previous} and {record.key_size}); they cannot be averaged."
                    )
        return sizes
