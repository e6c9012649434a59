# Copyright 2026 The diffusers-matte authors. Licensed under the Apache License, Version 2.0.
"""Matting decoder of the paper's Sec. 3.4: from the 1/8 soft-grounding outputs to a full-resolution alpha.

The structure follows ViTMatte's detail-capture module (Yao et al., 2024a): a stride-2 convolution stream over the
image extracts detail features at 1/2, 1/4 and 1/8; fusion blocks then climb back to full resolution, each one
concatenating a detail map with the up-sampled decoder state. The one structural change: ViTMatte's backbone
feature is at 1/16, the UNet's is at 1/8, so the first fusion block meets the deepest detail map without
up-sampling.
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import (
    ModelMixin,
)  # must be in this namespace: makes the class loadable
from diffusers.utils import BaseOutput
from torch import nn

# From the heads module: remote-code loading follows one level of same-folder imports, not two.
from .heads import ConvBNReLU


@dataclass
class MattingDecoderOutput(BaseOutput):
    """Output of [`MattingDecoder`].

    Args:
        alpha (`torch.Tensor` of shape `(B, 1, H, W)`): the alpha matte in [0, 1] at the image's resolution.
        hidden_states (`torch.Tensor` of shape `(B, C, H, W)`): the full-resolution context features under the
            prediction head (`C = fusion_channels[-1]`), the input of the sparse up-sampling refiner.
    """

    alpha: torch.Tensor
    hidden_states: torch.Tensor


class FusionBlock(nn.Module):
    """Resize the decoder state to the detail map's grid, concatenate `[detail, state]`, one ConvBNReLU."""

    def __init__(self, detail_channels: int, state_channels: int, out_channels: int):
        super().__init__()
        self.conv = ConvBNReLU(detail_channels + state_channels, out_channels)

    def forward(self, detail: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        if state.shape[-2:] != detail.shape[-2:]:
            state = F.interpolate(state, size=detail.shape[-2:], mode="bilinear", align_corners=False)
        return self.conv(torch.cat([detail, state], dim=1))


class MattingDecoder(ModelMixin, ConfigMixin):
    r"""Detail encoder-decoder that turns the UNet's coarse alpha, transparency and features into a fine alpha.

    Encoder input: `(I, up(alpha_lr), sigmoid(up(R)))` (paper Sec. 3.4), i.e. `image_channels + 2` channels.
    The UNet features go through one ConvBNReLU alignment block before they are concatenated with the encoder's
    deepest detail map.

    The defaults total about 2.68M parameters, close to the 2.67M learnable parameters of the paper's Tab. 4:
    ViTMatte-S widths, a 320-channel UNet feature (SD's first-level width) and a 288-channel alignment block
    (the paper does not give that width; 288 is what brings the count to the paper's).

    Args:
        feature_channels (`int`, defaults to 320): channels of the UNet's output features (`block_out_channels[0]`).
        aligned_channels (`int`, defaults to 288): output channels of the ConvBNReLU alignment block.
        image_channels (`int`, defaults to 3): channels of the image.
        convstream_channels (`tuple[int, ...]`, defaults to `(48, 96, 192)`): widths of the stride-2 detail stream
            (one entry per halving; three entries reach the UNet's 1/8 grid).
        fusion_channels (`tuple[int, ...]`, defaults to `(256, 128, 64, 32)`): widths of the fusion blocks, from
            the 1/8 grid up to full resolution (`len(convstream_channels) + 1` entries).
        head_channels (`int`, defaults to 16): width of the prediction head's hidden layer.
        refine_coarse_alpha (`bool`, defaults to True): predict a correction added to the up-sampled coarse alpha
            instead of the alpha from scratch. The head's last layer starts at zero, so an untrained decoder returns
            the coarse alpha and training only has to learn the details. The sum is clipped to [0, 1] in eval mode
            only: in training the L1 loss sees it unclipped, so background pixels are pulled to exactly 0 with a
            constant gradient (a sigmoid output's gradient vanishes there, leaving a haze over the whole image).
            The paper does not say how its decoder's output is formed; `False` predicts sigmoid logits from
            scratch, as ViTMatte does.
    """

    @register_to_config
    def __init__(
        self,
        feature_channels: int = 320,
        aligned_channels: int = 288,
        image_channels: int = 3,
        convstream_channels: tuple[int, ...] = (48, 96, 192),
        fusion_channels: tuple[int, ...] = (256, 128, 64, 32),
        head_channels: int = 16,
        refine_coarse_alpha: bool = True,
    ):
        super().__init__()
        if len(fusion_channels) != len(convstream_channels) + 1:
            raise ValueError(
                f"`fusion_channels` needs len(convstream_channels) + 1 = {len(convstream_channels) + 1} entries, "
                f"got {len(fusion_channels)}."
            )
        in_channels = image_channels + 2  # image, up-sampled coarse alpha, sigmoid of up-sampled R
        stream_in = (in_channels, *convstream_channels[:-1])
        self.convstream = nn.ModuleList(ConvBNReLU(i, o, stride=2) for i, o in zip(stream_in, convstream_channels))
        self.feature_align = ConvBNReLU(feature_channels, aligned_channels)

        # Detail maps from deepest (1/8) to full resolution (the raw input), as in ViTMatte.
        detail_channels = (*reversed(convstream_channels), in_channels)
        state_channels = (aligned_channels, *fusion_channels[:-1])
        self.fusion_blocks = nn.ModuleList(
            FusionBlock(d, s, o) for d, s, o in zip(detail_channels, state_channels, fusion_channels)
        )
        self.head = nn.Sequential(
            nn.Conv2d(fusion_channels[-1], head_channels, 3, padding=1),
            nn.BatchNorm2d(head_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(head_channels, 1, 1),
        )
        if refine_coarse_alpha:
            nn.init.zeros_(self.head[-1].weight)
            nn.init.zeros_(self.head[-1].bias)

    def forward(
        self,
        pixel_values: torch.Tensor,
        coarse_alpha: torch.Tensor,
        transparency_logits: torch.Tensor,
        features: torch.Tensor,
        return_dict: bool = True,
    ) -> MattingDecoderOutput | tuple:
        r"""Predict the alpha matte at the resolution of `pixel_values`.

        Args:
            pixel_values (`torch.Tensor` of shape `(B, 3, H, W)`): the image, normalised to [-1, 1] as for the VAE.
            coarse_alpha (`torch.Tensor` of shape `(B, 1, h, w)`): the UNet's low-resolution alpha in [0, 1].
            transparency_logits (`torch.Tensor` of shape `(B, 1, h, w)`): the UNet's transparency logits `R`.
            features (`torch.Tensor` of shape `(B, feature_channels, h, w)`): the UNet's output features.
            return_dict (`bool`): return a [`MattingDecoderOutput`] instead of a tuple.
        """
        size = pixel_values.shape[-2:]
        # Sec. 3.4: alpha_lr and R are interpolated to the image's resolution, R goes through a sigmoid.
        coarse_alpha = F.interpolate(coarse_alpha.to(pixel_values.dtype), size=size, mode="bilinear")
        transparency = torch.sigmoid(
            F.interpolate(transparency_logits.to(pixel_values.dtype), size=size, mode="bilinear")
        )
        details = [torch.cat([pixel_values, coarse_alpha, transparency], dim=1)]
        for conv in self.convstream:
            details.append(conv(details[-1]))

        state = self.feature_align(features.to(pixel_values.dtype))
        for block, detail in zip(self.fusion_blocks, reversed(details)):
            state = block(detail, state)
        if self.config.refine_coarse_alpha:
            alpha = coarse_alpha + self.head(state)
            alpha = alpha if self.training else alpha.clamp(0.0, 1.0)
        else:
            alpha = torch.sigmoid(self.head(state))
        if not return_dict:
            return (alpha, state)
        return MattingDecoderOutput(alpha=alpha, hidden_states=state)
