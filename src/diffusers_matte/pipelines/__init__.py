# Copyright 2026 The diffusers-matte authors. Licensed under the Apache License, Version 2.0.
"""Pipelines of diffusers-matte."""

from .soft_grounding import SoftGroundingMattingOutput, SoftGroundingMattingPipeline

__all__ = ["SoftGroundingMattingOutput", "SoftGroundingMattingPipeline"]
