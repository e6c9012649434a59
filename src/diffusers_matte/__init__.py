# Copyright 2026 The diffusers-matte authors. Licensed under the Apache License, Version 2.0.
"""diffusers-matte: text-grounded alpha matting with diffusion models (Xiang et al., TMLR 2025).

The public names below are imported on first use (PEP 562), so that `import diffusers_matte` and the
`diffusers-matte --help` command stay fast: torch and diffusers load only when a model, the pipeline or a metric
is asked for. `from diffusers_matte import SoftGroundingMattingPipeline` works as before; touching any of these
names loads the model modules and the pipeline together, so that a saved pipeline's custom components resolve
before `SoftGroundingMattingPipeline.from_pretrained` runs.
"""

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0.dev0"

# public name -> the submodule that defines it
_LAZY_NAMES = {
    "MattingMetrics": ".metrics",
    "conn": ".metrics",
    "grad": ".metrics",
    "mse": ".metrics",
    "sad": ".metrics",
    "CapturedActivations": ".models",
    "MatteAttnProcessor": ".models",
    "MatteUNet2DConditionModel": ".models",
    "MatteUNetPrediction": ".models",
    "MattingDecoder": ".models",
    "SparseMatteRefiner": ".models",
    "TextAdapter": ".models",
    "SoftGroundingMattingOutput": ".pipelines",
    "SoftGroundingMattingPipeline": ".pipelines",
    "SoftGroundingImageProcessor": ".pipelines.soft_grounding",
    "cutout": ".pipelines.soft_grounding",
    "estimate_foreground": ".pipelines.soft_grounding",
}

__all__ = sorted(_LAZY_NAMES)

if TYPE_CHECKING:  # static analysers and IDEs see the names as ordinary imports
    from .metrics import MattingMetrics, conn, grad, mse, sad  # noqa: F401
    from .models import (  # noqa: F401
        CapturedActivations,
        MatteAttnProcessor,
        MatteUNet2DConditionModel,
        MatteUNetPrediction,
        MattingDecoder,
        SparseMatteRefiner,
        TextAdapter,
    )
    from .pipelines import SoftGroundingMattingOutput, SoftGroundingMattingPipeline  # noqa: F401
    from .pipelines.soft_grounding import SoftGroundingImageProcessor, cutout, estimate_foreground  # noqa: F401


def __getattr__(name: str) -> Any:
    module_name = _LAZY_NAMES.get(name)
    if module_name is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    if module_name != ".metrics":
        importlib.import_module(".models", __name__)  # the components, before any pipeline loads
    value = getattr(importlib.import_module(module_name, __name__), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list:
    return sorted(set(globals()) | set(_LAZY_NAMES))
