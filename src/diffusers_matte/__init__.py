# Copyright 2026 The diffusers-matte authors. Licensed under the Apache License, Version 2.0.
"""diffusers-matte: text-grounded alpha matting with diffusion models (Xiang et al., TMLR 2025).

The model modules are imported eagerly: diffusers resolves a saved pipeline's custom components through
`sys.modules`, so they must be loaded before `SoftGroundingMattingPipeline.from_pretrained`.
"""

__version__ = "0.1.0.dev0"

from .metrics import MattingMetrics, conn, grad, mse, sad
from .models import (
    CapturedActivations,
    MatteAttnProcessor,
    MatteUNet2DConditionModel,
    MatteUNetPrediction,
    MattingDecoder,
    SparseMatteRefiner,
    TextAdapter,
)
from .pipelines import SoftGroundingMattingOutput, SoftGroundingMattingPipeline
from .pipelines.soft_grounding import (
    SoftGroundingImageProcessor,
    cutout,
    estimate_foreground,
)

__all__ = [
    "CapturedActivations",
    "MatteAttnProcessor",
    "MatteUNet2DConditionModel",
    "MatteUNetPrediction",
    "MattingDecoder",
    "MattingMetrics",
    "SoftGroundingImageProcessor",
    "SoftGroundingMattingOutput",
    "SoftGroundingMattingPipeline",
    "SparseMatteRefiner",
    "TextAdapter",
    "conn",
    "cutout",
    "estimate_foreground",
    "grad",
    "mse",
    "sad",
]
