# Copyright 2026 The diffusers-matte authors. Licensed under the Apache License, Version 2.0.
"""Predictors: what is evaluated, as ``predict(images, prompts) -> alphas`` (a pipeline or a constant baseline)."""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from .protocols import Sample

#: ``predict(images, prompts) -> alphas``: ``images`` are RGB uint8 (H, W, 3) arrays (the same object repeated when
#: several prompts refer to one image), ``prompts`` one string per image; one alpha in [0, 1] per image, at that
#: image's size, as (H, W), (H, W, 1) or (1, H, W) arrays or tensors. A predictor may also return
#: ``{"alpha": alphas, "grounding_score": scores}``, one score in [0, 1] per image (see :func:`split_predictions`).
Predictor = Callable[[List[np.ndarray], List[str]], Union[Sequence[Any], Mapping[str, Sequence[Any]]]]


BASELINES = {"zeros": 0.0, "ones": 1.0}


def constant_predictor(value: float) -> Predictor:
    """A trivial baseline predicting the same alpha ``value`` everywhere (0: nothing, 1: everything), and
    ``value`` as its grounding score (the peak of its matte): the same for every prompt, so its AUROC is 0.5."""
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"`value` must be in [0, 1], got {value}.")

    def predict(images: List[np.ndarray], prompts: List[str]) -> Dict[str, List[Any]]:
        alphas = [np.full(image.shape[:2], value, dtype=np.float32) for image in images]
        return {"alpha": alphas, "grounding_score": [float(value)] * len(images)}

    return predict


def pipeline_predictor(pipeline, processing_resolution: Optional[int] = None) -> Predictor:
    """Wraps a :class:`SoftGroundingMattingPipeline` as a :data:`Predictor`.

    Pairs that share an image object are passed as one image with several prompts, so each image is encoded once;
    all pairs of a call run through the models together. Outputs are at the input's size, with the pipeline's
    grounding scores.
    """

    def predict(images: List[np.ndarray], prompts: List[str]) -> Dict[str, List[Any]]:
        order: Dict[int, List[int]] = {}
        for k, image in enumerate(images):
            order.setdefault(id(image), []).append(k)
        groups = list(order.values())
        output = pipeline(
            [images[g[0]] for g in groups],
            prompt=[[prompts[k] for k in g] for g in groups],
            processing_resolution=processing_resolution,
            batch_size=len(prompts),
            output_type="np",
        )
        alphas: List[Any] = [None] * len(images)
        scores: List[Any] = [None] * len(images)
        # The pipeline returns the pairs image by image, each image's prompts in order.
        for k, alpha, score in zip((k for g in groups for k in g), output.alpha, output.grounding_score):
            alphas[k], scores[k] = alpha, float(score)
        return {"alpha": alphas, "grounding_score": scores}

    return predict


def split_predictions(output: Any, count: int) -> Tuple[Sequence[Any], List[Optional[float]]]:
    """A predictor's ``output`` for ``count`` pairs as ``(alphas, scores)``; scores are ``None`` where the
    predictor gives none (it returned the alphas alone)."""
    if isinstance(output, Mapping):
        if "alpha" not in output:
            raise ValueError(f"a predictor that returns a mapping must give 'alpha', got the keys {sorted(output)}.")
        alphas, scores = output["alpha"], output.get("grounding_score")
    else:
        alphas, scores = output, None
    if len(alphas) != count:
        raise ValueError(f"the predictor returned {len(alphas)} alphas for {count} (image, prompt) pairs.")
    if scores is None:
        return alphas, [None] * count
    scores = [None if score is None else float(score) for score in scores]
    if len(scores) != count or any(s is not None and not 0.0 <= s <= 1.0 for s in scores):
        raise ValueError(
            f"the predictor must give one grounding score in [0, 1] per pair ({count}), got {scores[:8]}"
            + (" ..." if len(scores) > 8 else "")
        )
    return alphas, scores


def as_alpha(value: Any, shape: Tuple[int, int], sample: Sample) -> np.ndarray:
    if hasattr(value, "detach"):
        value = value.detach().float().cpu().numpy()
    alpha = np.asarray(value, dtype=np.float64)
    alpha = alpha.reshape(alpha.shape[-2:]) if alpha.ndim == 3 and alpha.shape[0] == 1 else alpha
    alpha = alpha[..., 0] if alpha.ndim == 3 and alpha.shape[-1] == 1 else alpha
    if alpha.shape != shape:
        raise ValueError(
            f"the predictor returned an alpha of shape {np.asarray(value).shape} for instance "
            f"{sample.instance_id!r} (text {sample.text_index}), expected {shape} (the image's size)."
        )
    # Low-precision models can overshoot [0, 1] by an ulp; mattes are clipped as saved PNGs would be.
    return np.clip(alpha, 0.0, 1.0)


def synchronize() -> None:
    """Waits for queued CUDA work so that wall times cover it (asynchronous kernels)."""
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency
        return
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()
