# Copyright 2026 The diffusers-matte authors. Licensed under the Apache License, Version 2.0.
"""The soft-grounding matting pipeline (text-grounded alpha matting, Sec. 3 of the paper)."""

from .image_processor import (
    SoftGroundingImageProcessor,
    cutout,
    estimate_foreground,
    load_images,
)
from .pipeline_soft_grounding import (
    GROUNDING_SCORE_WINDOW,
    AlphaPrediction,
    SoftGroundingMattingOutput,
    SoftGroundingMattingPipeline,
    grounding_score,
)

__all__ = [
    "GROUNDING_SCORE_WINDOW",
    "AlphaPrediction",
    "SoftGroundingImageProcessor",
    "SoftGroundingMattingOutput",
    "SoftGroundingMattingPipeline",
    "cutout",
    "estimate_foreground",
    "grounding_score",
    "load_images",
]
