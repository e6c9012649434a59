# Copyright 2026 The diffusers-matte authors. Licensed under the Apache License, Version 2.0.
"""Text adapter of the paper's Sec. 3.2.1: a CLIP-Adapter style residual MLP on the CLIP text features."""

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import (
    ModelMixin,
)  # must be in this namespace: makes the class loadable
from torch import nn


class TextAdapter(ModelMixin, ConfigMixin):
    r"""Two-layer bottleneck MLP blended with its input, applied token-wise to the text encoder's hidden states.

    The frozen CLIP text encoder gives `f_T`; the adapter refines it into `f_T'` for the UNet's cross-attention
    (paper Sec. 3.2.1, "a two-layer MLP text adapter, inspired by Gao et al. (2024)"). As in CLIP-Adapter:

        f_T' = ratio * MLP(f_T) + (1 - ratio) * f_T,   MLP = [Linear(D, D/r) -> ReLU -> Linear(D/r, D) (-> ReLU)]

    Args:
        embed_dim (`int`, defaults to 1024):
            Width `D` of the text encoder's hidden states (1024 for SD 2.x's OpenCLIP ViT-H, 768 for SD 1.x).
        reduction (`int`, defaults to 4):
            Bottleneck factor `r` (CLIP-Adapter's value).
        ratio (`float`, defaults to 0.2):
            Residual ratio: the share of the adapted features in the output. 0.2 is CLIP-Adapter's value; the
            paper does not give one. `ratio=0` makes the adapter the identity.
        final_activation (`bool`, defaults to `True`):
            Keep CLIP-Adapter's ReLU after the second linear layer. It makes the adapter branch non-negative;
            `False` gives a plain two-layer MLP.
        bias (`bool`, defaults to `False`):
            Whether the linear layers have biases (CLIP-Adapter's have none).
    """

    @register_to_config
    def __init__(
        self,
        embed_dim: int = 1024,
        reduction: int = 4,
        ratio: float = 0.2,
        final_activation: bool = True,
        bias: bool = False,
    ):
        super().__init__()
        if embed_dim % reduction != 0:
            raise ValueError(f"`embed_dim` ({embed_dim}) must be divisible by `reduction` ({reduction}).")
        if not 0.0 <= ratio <= 1.0:
            raise ValueError(f"`ratio` must lie in [0, 1], got {ratio}.")
        hidden_dim = embed_dim // reduction
        layers = [
            nn.Linear(embed_dim, hidden_dim, bias=bias),
            nn.ReLU(),
            nn.Linear(hidden_dim, embed_dim, bias=bias),
        ]
        if final_activation:
            layers.append(nn.ReLU())
        self.mlp = nn.Sequential(*layers)

    def forward(self, encoder_hidden_states: torch.Tensor) -> torch.Tensor:
        """Map text features `(B, L, D)` to adapted features of the same shape."""
        if encoder_hidden_states.shape[-1] != self.config.embed_dim:
            raise ValueError(
                f"`encoder_hidden_states` must have {self.config.embed_dim} channels in its last dimension, got "
                f"shape {tuple(encoder_hidden_states.shape)}."
            )
        ratio = self.config.ratio
        return ratio * self.mlp(encoder_hidden_states) + (1.0 - ratio) * encoder_hidden_states
