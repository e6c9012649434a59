# Copyright 2026 The diffusers-matte authors. Licensed under the Apache License, Version 2.0.
"""Statistics for reporting a small-scale replication honestly (used by `synthetic_ablation.py`).

A synthetic test split of a few dozen images gives noisy means, so the ablation reports each mean with a
bootstrap confidence interval, and compares two variants with a *paired* interval of their per-sample
difference. Resampling is by group (instance id by default): the four expressions of one instance share its
image and alpha, so they are not independent samples, and resampling them one by one would give intervals
that are too narrow.

Two descriptions of the data put the numbers in context:

- :func:`latent_grid_ceiling`: the SAD of the best matte that a model limited to the latent grid could give
  (the ground truth average-pooled onto the grid and up-sampled as the pipeline does), next to the SAD of the
  all-zero matte; at a low processing resolution, small or thin mattes cannot be beaten by much;
- :func:`area_distribution`: how much of the image the mattes cover.

All functions are pure; only NumPy is needed, except for :func:`latent_grid_ceiling` (torch and the pipeline's
image processor, imported when called).
"""

from __future__ import annotations

from typing import Any, Hashable, Iterable, Mapping, Sequence

import numpy as np

__all__ = [
    "area_distribution",
    "bootstrap_interval",
    "format_interval",
    "latent_grid_ceiling",
    "paired_difference",
    "summarize_samples",
]

Interval = tuple[float, float, float]

# Upper bound on the (resamples x groups) index block drawn at once, to keep memory small for large sets.
_MAX_BLOCK = 1 << 22


def bootstrap_interval(
    values: Sequence[float] | np.ndarray,
    groups: Sequence[Hashable] | np.ndarray,
    num_resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> Interval:
    """Mean of ``values`` and its percentile bootstrap interval, resampling whole ``groups`` with replacement.

    Args:
        values: one metric value per sample.
        groups: the group of each sample (e.g. its instance id); samples of one group are drawn together.
        num_resamples: bootstrap resamples.
        confidence: coverage of the interval, in (0, 1).
        seed: seed of the NumPy generator; the result is deterministic given it.

    Returns:
        ``(mean, low, high)``. One resample's statistic is the mean over all samples of the drawn groups, so
        groups of different sizes weigh as in the plain mean.
    """
    values = np.asarray(values, dtype=np.float64)
    groups = np.asarray(groups)
    if values.ndim != 1 or groups.shape != values.shape:
        raise ValueError(
            f"`values` and `groups` must be 1-D of the same length, got shapes {values.shape} and {groups.shape}."
        )
    if values.size == 0:
        raise ValueError("`values` is empty; there is nothing to summarise.")
    if not np.isfinite(values).all():
        raise ValueError("`values` holds NaN or infinite entries; drop or fix those samples first.")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"`confidence` must be in (0, 1), got {confidence}.")
    if num_resamples < 1:
        raise ValueError(f"`num_resamples` must be positive, got {num_resamples}.")

    # Per-group sums and sizes: a resample then only needs G draws, not one per sample.
    _, group_index = np.unique(groups, return_inverse=True)
    group_index = group_index.reshape(-1)
    sums = np.bincount(group_index, weights=values)
    sizes = np.bincount(group_index).astype(np.float64)
    num_groups = sums.size

    rng = np.random.default_rng(seed)
    stats = np.empty(num_resamples)
    block = max(1, _MAX_BLOCK // num_groups)
    for start in range(0, num_resamples, block):
        stop = min(start + block, num_resamples)
        drawn = rng.integers(0, num_groups, size=(stop - start, num_groups))
        stats[start:stop] = sums[drawn].sum(axis=1) / sizes[drawn].sum(axis=1)

    tail = 100.0 * (1.0 - confidence) / 2.0
    low, high = np.percentile(stats, [tail, 100.0 - tail])
    return float(values.mean()), float(low), float(high)


def summarize_samples(
    rows: Iterable[Mapping[str, Any]],
    metrics: Sequence[str] = ("sad", "mse", "grad", "conn"),
    group_key: str = "instance_id",
    by: str = "text_type",
    **bootstrap_kwargs: Any,
) -> dict[str, dict]:
    """Group-bootstrap intervals of each metric over all samples and per value of ``by``.

    Args:
        rows: per-sample dicts, as :func:`diffusers_matte.evaluation.read_samples_csv` returns them.
        metrics: columns to summarise.
        group_key: column whose values are resampled together (see :func:`bootstrap_interval`).
        by: column splitting the samples into subsets (the expression type by default).
        bootstrap_kwargs: ``num_resamples``, ``confidence``, ``seed`` of :func:`bootstrap_interval`.

    Returns:
        ``{"all": {metric: (mean, low, high)}, "per_<by>": {value: {metric: (mean, low, high)}}}``, the subsets
        in order of first appearance.
    """
    rows = list(rows)
    if not rows:
        raise ValueError("`rows` is empty; there is nothing to summarise.")
    _check_columns(rows, tuple(metrics) + (group_key, by))

    def intervals(subset: list[Mapping[str, Any]]) -> dict[str, Interval]:
        groups = [r[group_key] for r in subset]
        return {m: bootstrap_interval([r[m] for r in subset], groups, **bootstrap_kwargs) for m in metrics}

    subsets: dict[Any, list[Mapping[str, Any]]] = {}
    for row in rows:
        subsets.setdefault(row[by], []).append(row)
    return {
        "all": intervals(rows),
        f"per_{by}": {value: intervals(subset) for value, subset in subsets.items()},
    }


def paired_difference(
    rows_a: Iterable[Mapping[str, Any]],
    rows_b: Iterable[Mapping[str, Any]],
    metric: str = "sad",
    group_key: str = "instance_id",
    **bootstrap_kwargs: Any,
) -> Interval:
    """Mean of ``a - b`` over samples matched by ``(instance_id, text_index)``, with its group bootstrap interval.

    Both runs are resampled together, so what they share (a hard instance is hard for both) cancels: an interval
    excluding 0 tells a real difference from noise even when the two runs' own intervals overlap. Negative means
    ``a`` has the lower (better, for the error metrics) value.

    Raises:
        ValueError: when the runs do not cover exactly the same samples, a sample appears twice in a run, or the
            two runs put one sample in different groups.
    """
    table_a, table_b = _by_sample(rows_a, "rows_a"), _by_sample(rows_b, "rows_b")
    if table_a.keys() != table_b.keys():
        only_a = sorted(table_a.keys() - table_b.keys())
        only_b = sorted(table_b.keys() - table_a.keys())
        raise ValueError(
            "the two runs do not cover the same samples (instance_id, text_index): "
            f"{len(only_a)} only in rows_a (e.g. {only_a[:3]}), {len(only_b)} only in rows_b (e.g. {only_b[:3]}). "
            "Compare runs of the same evaluation set, both complete."
        )
    if not table_a:
        raise ValueError("`rows_a` and `rows_b` are empty; there is nothing to compare.")
    keys = sorted(table_a)  # fixed order: the result does not depend on the CSVs' row order
    _check_columns([table_a[k] for k in keys], (metric, group_key), "rows_a")
    _check_columns([table_b[k] for k in keys], (metric, group_key), "rows_b")
    for key in keys:
        if table_a[key][group_key] != table_b[key][group_key]:
            raise ValueError(
                f"sample {key} has {group_key}={table_a[key][group_key]!r} in rows_a but "
                f"{table_b[key][group_key]!r} in rows_b."
            )
    differences = [float(table_a[k][metric]) - float(table_b[k][metric]) for k in keys]
    groups = [table_a[k][group_key] for k in keys]
    return bootstrap_interval(differences, groups, **bootstrap_kwargs)


def latent_grid_ceiling(
    alphas: Iterable[np.ndarray],
    resolution: int,
    latent_factor: int,
    pad_multiple: int | None = None,
) -> dict[str, float]:
    """SAD of the perfect latent-grid matte, next to the SAD of the all-zero matte.

    Each ground-truth alpha goes through the pipeline's own geometry: resized as its image would be
    (:meth:`SoftGroundingImageProcessor.preprocess`: longest edge to ``resolution``, aspect ratio kept, bilinear
    and antialiased, replicate-padded on the bottom and right to ``pad_multiple``), average-pooled by
    ``latent_factor`` (the best a coarse alpha on the latent grid can hold), then brought back to the native size
    as the pipeline brings back its predictions (:meth:`SoftGroundingImageProcessor.postprocess`: bilinear to
    the padded grid, crop, bilinear to the native size, clamp), and scored against the native alpha with
    :func:`diffusers_matte.metrics.sad`.

    Args:
        alphas: ground-truth alphas, float (H, W) arrays in [0, 1] at the native image size.
        resolution: the pipeline's ``processing_resolution`` (0: the native size).
        latent_factor: pixels per latent cell (the VAE's scale factor).
        pad_multiple: the pipeline's padding (``pipe.image_processor.pad_multiple``, VAE times UNet factor); a
            multiple of ``latent_factor``. None pads only to whole latent cells.

    Returns:
        ``{"ceiling_sad", "empty_sad", "ratio"}``: mean SADs over the alphas and ``ceiling_sad / empty_sad``
        (NaN when every alpha is empty). A ratio near 1 means the latent grid cannot resolve the mattes at all.
        It is a reference, not a strict bound: the cell average is the best coarse matte in squared error, not in
        SAD, so for mattes only a few cells wide the ratio can exceed 1 (blurring costs more than predicting 0).
    """
    # Imported here: the pipeline package pulls in diffusers, which the bootstrap functions do not need.
    import torch
    import torch.nn.functional as F

    from diffusers_matte.metrics import sad
    from diffusers_matte.pipelines.soft_grounding.image_processor import (
        SoftGroundingImageProcessor,
    )

    if latent_factor < 1:
        raise ValueError(f"`latent_factor` must be positive, got {latent_factor}.")
    if resolution < 0:
        raise ValueError(f"`resolution` must be non-negative (0: native size), got {resolution}.")
    pad_multiple = latent_factor if pad_multiple is None else pad_multiple
    if pad_multiple < 1 or pad_multiple % latent_factor:
        raise ValueError(
            f"`pad_multiple` ({pad_multiple}) must be a positive multiple of `latent_factor` ({latent_factor})."
        )
    processor = SoftGroundingImageProcessor(pad_multiple=pad_multiple)

    ceiling, empty = [], []
    for index, alpha in enumerate(alphas):
        gt = np.asarray(alpha, dtype=np.float64)
        if gt.ndim != 2:
            raise ValueError(f"`alphas[{index}]` must be an (H, W) alpha, got shape {gt.shape}.")
        if gt.size == 0 or not np.isfinite(gt).all() or gt.min() < 0 or gt.max() > 1:
            raise ValueError(f"`alphas[{index}]` must be a non-empty float alpha with values in [0, 1].")
        # In float64 rather than 8-bit, so the ceiling measures the grid and not quantisation (postprocess then
        # works in float32, as in the pipeline).
        tensor = torch.from_numpy(gt)[None, None]
        pixels, padding, native_size = processor.preprocess(tensor, resolution, "bilinear")
        coarse = F.avg_pool2d((pixels + 1.0) / 2.0, latent_factor)
        pred = processor.postprocess(coarse, tuple(pixels.shape[-2:]), padding, native_size, "bilinear")
        ceiling.append(sad(pred[0, 0].numpy(), gt))
        empty.append(sad(np.zeros_like(gt), gt))
    if not ceiling:
        raise ValueError("`alphas` is empty; there is nothing to measure.")
    ceiling_sad, empty_sad = float(np.mean(ceiling)), float(np.mean(empty))
    ratio = ceiling_sad / empty_sad if empty_sad > 0 else float("nan")
    return {"ceiling_sad": ceiling_sad, "empty_sad": empty_sad, "ratio": ratio}


def area_distribution(alphas: Iterable[np.ndarray]) -> dict[str, float]:
    """Share of the image covered by each alpha (``alpha > 0``, soft edges included), summarised over the set.

    Returns:
        ``{"mean", "p10", "p50", "p90", "min", "max"}`` of the per-alpha shares, each in [0, 1].
    """
    shares = np.array([np.mean(np.asarray(a) > 0) for a in alphas], dtype=np.float64)
    if shares.size == 0:
        raise ValueError("`alphas` is empty; there is nothing to measure.")
    p10, p50, p90 = np.percentile(shares, [10, 50, 90])
    return {
        "mean": float(shares.mean()),
        "p10": float(p10),
        "p50": float(p50),
        "p90": float(p90),
        "min": float(shares.min()),
        "max": float(shares.max()),
    }


def format_interval(mean: float, low: float, high: float, digits: int = 3) -> str:
    """``"0.412 [0.388, 0.437]"``: a mean and its interval, with ``digits`` decimals."""
    return f"{mean:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


# Helpers ---------------------------------------------------------------------------------------------------------


def _check_columns(rows: Sequence[Mapping[str, Any]], columns: Sequence[str], name: str = "rows") -> None:
    """A clear error, rather than a KeyError deep inside, when a column is missing."""
    for column in columns:
        missing = sum(1 for r in rows if column not in r)
        if missing:
            raise ValueError(f"`{name}`: {missing} of {len(rows)} rows lack the column {column!r}.")


def _by_sample(rows: Iterable[Mapping[str, Any]], name: str) -> dict[tuple[str, int], Mapping[str, Any]]:
    """Rows keyed by (instance_id, text_index), the key of ``samples.csv``."""
    _rows = list(rows)
    _check_columns(_rows, ("instance_id", "text_index"), name)
    table: dict[tuple[str, int], Mapping[str, Any]] = {}
    for row in _rows:
        key = (str(row["instance_id"]), int(row["text_index"]))
        if key in table:
            raise ValueError(f"`{name}` holds the sample {key} twice.")
        table[key] = row
    return table
