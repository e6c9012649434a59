# Copyright 2026 The diffusers-matte authors. Licensed under the Apache License, Version 2.0.
"""Summaries of the per-sample rows (overall and per text type) and their Markdown table."""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from ..metrics import METRIC_NAMES
from .protocols import PROTOCOLS

#: What each reported number is (the DIM evaluate.m scales; the paper's Tables 1-3 use them).
UNITS = {
    "sad": "sum |pred - gt| / 1000 (alpha in [0, 1])",
    "mse": "mean (pred - gt)^2, raw (not x 1e3)",
    "grad": "DIM gradient error / 1000",
    "conn": "DIM connectivity error / 1000",
    "time_ms": "wall time of the model call per (image, text) pair, milliseconds",
}


#: The share of rows with a target that the grounding report's threshold rejects (its false-rejection rate).
FALSE_REJECTION_RATE = 0.05


COLUMN_LABELS = {
    "sad": "SAD (/1e3)",
    "mse": "MSE (raw)",
    "grad": "GRAD (/1e3)",
    "conn": "CONN (/1e3)",
    "time_ms": "time (ms/sample)",
}


def _means(rows: List[Dict[str, Any]]) -> Dict[str, Any]:
    means: Dict[str, Any] = {"samples": len(rows)}
    for name in METRIC_NAMES:
        means[name] = float(np.mean([r[name] for r in rows])) if rows else float("nan")
    means["time_ms"] = float(np.mean([r["seconds"] for r in rows]) * 1000.0) if rows else float("nan")
    return means


def auroc(positive: Sequence[float], negative: Sequence[float]) -> float:
    """The area under the ROC curve of scores that should be higher for ``positive`` than for ``negative``: the
    probability that a positive outscores a negative, ties counting one half (Mann-Whitney U over the two counts)."""
    positive, negative = np.asarray(positive, np.float64), np.asarray(negative, np.float64)
    if not len(positive) or not len(negative):
        raise ValueError(f"auroc needs scores of both classes, got {len(positive)} and {len(negative)}.")
    _, inverse, counts = np.unique(np.concatenate([positive, negative]), return_inverse=True, return_counts=True)
    midranks = np.cumsum(counts) - (counts - 1) / 2.0  # tied scores share the mean of their ranks (1-based)
    rank_sum = midranks[inverse[: len(positive)]].sum()
    return float((rank_sum - len(positive) * (len(positive) + 1) / 2.0) / (len(positive) * len(negative)))


def rejection_at(
    target_scores: Sequence[float], no_target_scores: Sequence[float], false_rejection_rate: float
) -> Dict[str, float]:
    """Rejecting every score below a threshold: the highest threshold that rejects at most
    ``false_rejection_rate`` of ``target_scores`` (the score at that quantile), the share of them it rejects, and
    the share of ``no_target_scores`` it rejects."""
    if not 0.0 <= false_rejection_rate < 1.0:
        raise ValueError(f"`false_rejection_rate` must be in [0, 1), got {false_rejection_rate!r}.")
    target, no_target = np.sort(np.asarray(target_scores, np.float64)), np.asarray(no_target_scores, np.float64)
    threshold = float(target[int(np.floor(false_rejection_rate * len(target)))])
    return {
        "threshold": threshold,
        "false_rejection_rate": float(np.mean(target < threshold)),
        "no_target_rejection_rate": float(np.mean(no_target < threshold)),
    }


def grounding_summary(
    rows: List[Dict[str, Any]], false_rejection_rate: float = FALSE_REJECTION_RATE
) -> Optional[Dict[str, Any]]:
    """How well the grounding score tells texts that name something from texts that name nothing: its AUROC and
    the rejection of :func:`rejection_at`, on the rows that have a score, with the means of the four metrics on the
    rows without a target (the mass the model predicts where there is nothing). ``None`` without such rows."""
    absent = [r for r in rows if not r.get("has_target", True)]
    if not absent:
        return None
    scored = [r for r in rows if r.get("grounding_score") is not None]
    target = [r["grounding_score"] for r in scored if r.get("has_target", True)]
    no_target = [r["grounding_score"] for r in scored if not r.get("has_target", True)]
    summary: Dict[str, Any] = {
        "target_samples": len(rows) - len(absent),
        "no_target_samples": len(absent),
        "scored_samples": len(scored),
        "no_target_mean": _means(absent),
        "auroc": None,
        "target_false_rejection_rate": false_rejection_rate,
    }
    if target and no_target:
        summary["auroc"] = auroc(target, no_target)
        summary.update(rejection_at(target, no_target, false_rejection_rate))
    return summary


def summarize(
    rows: List[Dict[str, Any]],
    header: Dict[str, Any],
    total: Optional[int] = None,
    device: Optional[str] = None,
) -> Dict[str, Any]:
    """Means over all samples (the paper's "average result among these 4 expressions") and per text type.

    Samples whose text names nothing in the image (``has_target`` False) are left out of these means, and
    summarised under ``grounding`` (:func:`grounding_summary`; ``None`` when the set has none).

    Args:
        rows: per-sample rows (as in ``samples.csv``).
        header: the run's description (``run.json``).
        total: the number of samples the run targets (``complete`` says whether all are scored).
        device: the device of this run, reported with the timings.
    """
    by_type: Dict[str, List[Dict[str, Any]]] = defaultdict(list)
    with_target = [row for row in rows if row.get("has_target", True)]
    for row in with_target:
        by_type[row["text_type"]].append(row)
    return {
        "run": header,
        "device": device,
        "devices_in_csv": sorted({r["device"] for r in rows if r["device"]}),
        "num_samples": len(rows),
        "num_instances": len({r["instance_id"] for r in with_target}),
        "num_target_samples": len(rows) if total is None else total,
        "complete": total is None or len(rows) == total,
        "units": UNITS,
        "mean": _means(with_target),
        "per_text_type": {kind: _means(group) for kind, group in by_type.items()},
        "grounding": grounding_summary(rows),
    }


def format_markdown(summary: Dict[str, Any]) -> str:
    """A Markdown table: one line for all samples, then one per text type, with the units spelled out."""
    run = summary["run"]
    columns = ["samples"] + list(METRIC_NAMES) + ["time_ms"]
    lines = [
        f"# Evaluation: {run.get('protocol')}",
        "",
        f"- model: `{run.get('model', 'unnamed predictor')}`",
        f"- protocol: {PROTOCOLS[run['protocol']].description if run.get('protocol') in PROTOCOLS else run.get('protocol')}"
        f"; scored at {'full resolution' if run.get('resolution') is None else '%dx%d' % ((run['resolution'],) * 2)}, whole image",
        f"- device: {summary.get('device') or 'unknown'}, dtype: {run.get('dtype') or 'unknown'}",
        f"- samples: {summary['num_samples']} of {summary['num_target_samples']} (instances: {summary['num_instances']})"
        + ("" if summary["complete"] else " - INCOMPLETE"),
        "",
        "| subset | " + " | ".join(COLUMN_LABELS.get(c, c) for c in columns) + " |",
        "|---|" + "---:|" * len(columns),
    ]
    subsets = [("all", summary["mean"])] + list(summary["per_text_type"].items())
    for name, means in subsets:
        cells = [str(means["samples"])] + [_fmt(means[c], c) for c in columns[1:]]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += _grounding_lines(summary.get("grounding"))
    lines += [
        "",
        "Units: " + "; ".join(f"{COLUMN_LABELS[k]} = {v}" for k, v in UNITS.items()) + ".",
    ]
    return "\n".join(lines) + "\n"


def _grounding_lines(grounding: Optional[Dict[str, Any]]) -> List[str]:
    if grounding is None:
        return []
    sad = _fmt(grounding["no_target_mean"]["sad"], "sad")
    lines = [
        "",
        f"Texts that name nothing in the image: {grounding['no_target_samples']} samples, not in the table above "
        f"(their mean SAD, the alpha predicted where there is nothing: {sad}).",
    ]
    if grounding["auroc"] is None:
        return lines + ["The predictor gives no grounding score."]
    share = 100 * grounding["target_false_rejection_rate"]
    return lines + [
        f"Grounding score: AUROC {grounding['auroc']:.3f} (texts with vs without a target, "
        f"{grounding['scored_samples']} scored samples); rejecting scores below {grounding['threshold']:.3f} "
        f"(at most {share:g}% of texts with a target; {100 * grounding['false_rejection_rate']:.1f}% here) rejects "
        f"{100 * grounding['no_target_rejection_rate']:.1f}% of texts without one."
    ]


def _fmt(value: float, column: str) -> str:
    if value != value:  # NaN
        return "n/a"
    return f"{value:.4f}" if column == "mse" else f"{value:.3f}"
