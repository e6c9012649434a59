# Copyright 2026 The diffusers-matte authors. Licensed under the Apache License, Version 2.0.
"""Prediction heads that replace the UNet's latent `conv_out` (paper sections 3.2.1 and 3.2.2).

- `RegionHead` (teacher): two ConvBNReLU groups, then 3 logits per latent pixel for the background /
  foreground / transparent regions of the alpha matte (the s_I of section 3.2.1, trained with eq. 2).
- `MatteHead` (student): the same trunk, then the coarse alpha alpha^lr in [0, 1] and the transparency
  confidence logit R (section 3.2.2, trained with eqs. 7 and 8).
"""

import torch
from torch import nn

# The channel order of the region logits; the same class indices as `diffusers_matte.data.targets` (kept
# standalone here: this file travels with exported checkpoints).
REGION_CLASSES = ("background", "foreground", "transparent")


class ConvBNReLU(nn.Sequential):
    """3x3 convolution without bias, batch normalisation and ReLU: the block the paper (its heads) and ViTMatte (its
    detail-capture decoder) both call "ConvBNReLU"."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1):
        super().__init__(
            nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )


class _ConvBNReLUHead(nn.Module):
    """Two ConvBNReLU groups followed by a 1x1 classifier (a ReLU cannot produce logits)."""

    num_outputs: int

    def __init__(self, in_channels: int, hidden_channels: int):
        super().__init__()
        self.trunk = nn.Sequential(
            ConvBNReLU(in_channels, hidden_channels),
            ConvBNReLU(hidden_channels, hidden_channels),
        )
        self.proj = nn.Conv2d(hidden_channels, self.num_outputs, kernel_size=1)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.proj(self.trunk(features))


class RegionHead(_ConvBNReLUHead):
    """Teacher head: logits of the 3-class region map, channels ordered as `REGION_CLASSES`."""

    num_outputs = len(REGION_CLASSES)


class MatteHead(_ConvBNReLUHead):
    """Student head: channel 0 is the coarse alpha, channel 1 the transparency logit R.

    The alpha is a linear output, clipped to [0, 1] in eval mode only: the L1 loss of eq. (7) then pulls the
    background to exactly 0 with a constant gradient, where a sigmoid's gradient vanishes and leaves a haze.
    """

    num_outputs = 2

    def __init__(self, in_channels: int, hidden_channels: int):
        super().__init__(in_channels, hidden_channels)
        with torch.no_grad():
            self.proj.bias[0] = 0.5  # an untrained head predicts "unsure" rather than a clipped-away negative

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        outputs = super().forward(features)
        alpha = outputs[:, :1] if self.training else outputs[:, :1].clamp(0.0, 1.0)
        return torch.cat([alpha, outputs[:, 1:]], dim=1)


PREDICTION_HEADS = {"region": RegionHead, "matte": MatteHead}
