# Copyright 2026 The diffusers-matte authors. Licensed under the Apache License, Version 2.0.
"""The models of diffusers-matte, one module per section of the paper."""

from .attention_processor import MatteAttnProcessor, RemovedSelfAttention
from .heads import MatteHead, RegionHead
from .matting_decoder import MattingDecoder, MattingDecoderOutput
from .semantic_guidance_projector import SemanticGuidanceProjection, SemanticGuidanceProjector
from .sparse_refiner import SparseMatteRefiner, SparseMatteRefinerOutput
from .text_adapter import TextAdapter
from .unet_matte import (
    CapturedActivations,
    MatteUNet2DConditionModel,
    MatteUNetPrediction,
)

__all__ = [
    "CapturedActivations",
    "MatteAttnProcessor",
    "MatteHead",
    "MatteUNet2DConditionModel",
    "MatteUNetPrediction",
    "MattingDecoder",
    "MattingDecoderOutput",
    "RegionHead",
    "RemovedSelfAttention",
    "SemanticGuidanceProjection",
    "SemanticGuidanceProjector",
    "SparseMatteRefiner",
    "SparseMatteRefinerOutput",
    "TextAdapter",
]
