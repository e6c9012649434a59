# Copyright 2026 The diffusers-matte authors. Licensed under the Apache License, Version 2.0.
"""Summaries of the per-sample rows (overall and per text type) and their Markdown table."""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Dict, List, Optional

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


def summarize(
    rows: List[Dict[str, Any]],
    header: Dict[str, Any],
    total: Optional[int] = None,
    device: Optional[str] = None,
) -> Dict[str, Any]:
    """Means over all samples (the paper's "average result among these 4 expressions") and per text type.

    Args:
        rows: per-sample rows (as in ``samples.csv``).
        header: the run's description (``run.json``).
        total: the number of samples the run targets (``complete`` says whether all are scored).
        device: the device of this run, reported with the timings.
    """
    by_type: Dict[str, List[Dict[str, Any]]] = defaultdict(list)
    for row in rows:
        by_type[row["text_type"]].append(row)
    return {
        "run": header,
        "device": device,
        "devices_in_csv": sorted({r["device"] for r in rows if r["device"]}),
        "num_samples": len(rows),
        "num_instances": len({r["instance_id"] for r in rows}),
        "num_target_samples": len(rows) if total is None else total,
        "complete": total is None or len(rows) == total,
        "units": UNITS,
        "mean": _means(rows),
        "per_text_type": {kind: _means(group) for kind, group in by_type.items()},
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
    lines += [
        "",
        "Units: " + "; ".join(f"{COLUMN_LABELS[k]} = {v}" for k, v in UNITS.items()) + ".",
    ]
    return "\n".join(lines) + "\n"


def _fmt(value: float, column: str) -> str:
    if value != value:  # NaN
        return "n/a"
    return f"{value:.4f}" if column == "mse" else f"{value:.3f}"
