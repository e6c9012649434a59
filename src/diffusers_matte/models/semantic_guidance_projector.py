# Copyright 2026 The diffusers-matte authors. Licensed under the Apache License, Version 2.0.
"""Phi of eq. (4) (section 3.2.2): the projections that map the pruned student's features into the teacher's space
for the semantic-guidance loss L_SG (eq. 3, `diffusers_matte.losses.semantic_guidance_loss`). Trained in stage 2
and saved with the student (`projector/`); not used at inference."""

from typing import Any, Mapping, Optional, Sequence

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn


class SemanticGuidanceProjection(ModelMixin, ConfigMixin):
    r"""Phi of eq. (4): `Cv3x3(Cv3x3(LeakyReLU(Cv1x1(F))))`, mapping one student feature into the teacher's space.

    Args:
        in_channels: channels of the student feature.
        out_channels: channels of the teacher feature.
        hidden_channels: width of the two inner convolutions (default: `out_channels`; the paper does not say).
        negative_slope: slope of the LeakyReLU (the paper does not say; PyTorch's default).
    """

    @register_to_config
    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        hidden_channels: Optional[int] = None,
        negative_slope: float = 0.01,
    ):
        super().__init__()
        hidden_channels = hidden_channels or out_channels
        self.conv_in = nn.Conv2d(in_channels, hidden_channels, kernel_size=1)
        self.act = nn.LeakyReLU(negative_slope)
        self.conv_mid = nn.Conv2d(hidden_channels, hidden_channels, kernel_size=3, padding=1)
        self.conv_out = nn.Conv2d(hidden_channels, out_channels, kernel_size=3, padding=1)

    def forward(self, feature: torch.Tensor) -> torch.Tensor:
        return self.conv_out(self.conv_mid(self.act(self.conv_in(feature))))


class SemanticGuidanceProjector(ModelMixin, ConfigMixin):
    r"""One Phi (eq. 4) per distilled layer l of eq. (3), saved together with `save_pretrained`.

    A pruned student names its layers differently from the teacher (BK-SDM "tiny" drops the lowest level, so the
    student's `up_blocks.0` pairs with the teacher's `up_blocks.1`), so each student layer records the teacher
    layer it is compared with.

    Args:
        feature_names: the student's distilled layers, as given to the UNet's `capture(features=...)`
            (e.g. `"up_blocks.0"`).
        in_channels: student channels, one per layer.
        out_channels: teacher channels, one per layer.
        teacher_feature_names: the teacher layer of each student layer (default: the same names).
        hidden_channels: optional inner widths, one per layer.
        negative_slope: slope of every LeakyReLU.
    """

    @register_to_config
    def __init__(
        self,
        feature_names: Sequence[str],
        in_channels: Sequence[int],
        out_channels: Sequence[int],
        teacher_feature_names: Optional[Sequence[str]] = None,
        hidden_channels: Optional[Sequence[Optional[int]]] = None,
        negative_slope: float = 0.01,
    ):
        super().__init__()
        teacher_feature_names = teacher_feature_names or feature_names
        hidden_channels = hidden_channels or [None] * len(feature_names)
        lengths = [
            feature_names,
            in_channels,
            out_channels,
            teacher_feature_names,
            hidden_channels,
        ]
        if len({len(value) for value in lengths}) != 1:
            raise ValueError(
                "`feature_names`, `in_channels`, `out_channels`, `teacher_feature_names` and `hidden_channels` must "
                f"have the same length, got {[len(value) for value in lengths]}."
            )
        if len(set(feature_names)) != len(feature_names):
            raise ValueError(f"`feature_names` must be unique, got {list(feature_names)}.")
        self.layer_pairs = dict(zip(feature_names, teacher_feature_names))
        # A list, not a ModuleDict: feature names contain dots, which module names may not.
        self.projections = nn.ModuleList(
            SemanticGuidanceProjection(c_in, c_out, c_hidden, negative_slope)
            for c_in, c_out, c_hidden in zip(in_channels, out_channels, hidden_channels)
        )

    @classmethod
    def from_features(
        cls,
        student_features: Mapping[str, torch.Tensor],
        teacher_features: Mapping[str, torch.Tensor],
        layer_pairs: Optional[Mapping[str, str]] = None,
        **kwargs: Any,
    ) -> "SemanticGuidanceProjector":
        """Builds a projector whose channels match captured `(B, C, h, w)` features.

        Args:
            student_features, teacher_features: captured features keyed by layer name.
            layer_pairs: `{student layer: teacher layer}`; default: every student layer with the same teacher name.
        """
        layer_pairs = dict(layer_pairs or {name: name for name in student_features})
        missing = [s for s, t in layer_pairs.items() if s not in student_features or t not in teacher_features]
        if missing:
            raise ValueError(
                f"Layers {missing} (student names) lack a student or teacher feature; student features have "
                f"{list(student_features)}, teacher features {list(teacher_features)}."
            )
        return cls(
            feature_names=list(layer_pairs),
            in_channels=[student_features[name].shape[1] for name in layer_pairs],
            out_channels=[teacher_features[name].shape[1] for name in layer_pairs.values()],
            teacher_feature_names=list(layer_pairs.values()),
            **kwargs,
        )

    def forward(self, student_features: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Applies each layer's Phi; returns a dict keyed by the student layer names."""
        missing = [name for name in self.layer_pairs if name not in student_features]
        if missing:
            raise ValueError(
                f"`student_features` is missing {missing}; the projector expects {list(self.layer_pairs)} "
                f"and got {list(student_features)}."
            )
        return {
            name: projection(student_features[name]) for name, projection in zip(self.layer_pairs, self.projections)
        }
