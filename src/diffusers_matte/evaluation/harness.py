# Copyright 2026 The diffusers-matte authors. Licensed under the Apache License, Version 2.0.
"""The evaluation loop: predict, score (optionally in worker processes), append, summarise."""

from __future__ import annotations

import json
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from ..metrics import VARIANTS, all_metrics
from .predictors import Predictor, as_alpha, synchronize
from .protocols import EvaluationProtocol, PathLike, Sample, get_protocol, list_samples, load_pair
from .records import HEADER_FORMAT, METRICS_FILE, SAMPLES_FILE, TABLE_FILE, CsvAppender, check_header, read_samples_csv
from .report import format_markdown, summarize


@dataclass
class EvaluationResult:
    """What :func:`evaluate` returns: the summary (as in ``metrics.json``) and the per-sample rows."""

    summary: Dict[str, Any]
    rows: List[Dict[str, Any]] = field(repr=False)
    output_dir: Optional[Path] = None

    def to_markdown(self) -> str:
        """The summary as a Markdown table with a units line (the content of ``results.md``)."""
        return format_markdown(self.summary)


def evaluate(
    predict: Predictor,
    dataset,
    protocol: Union[str, EvaluationProtocol],
    output_dir: Optional[PathLike] = None,
    *,
    run_info: Optional[Dict[str, Any]] = None,
    resolution: Union[int, None, str] = "protocol",
    text_type_names: Optional[Sequence[str]] = None,
    batch_size: int = 1,
    max_samples: Optional[int] = None,
    grad_variant: str = "matlab",
    conn_variant: str = "matlab",
    device: Optional[str] = None,
    dtype: Optional[str] = None,
    warmup: int = 1,
    metric_workers: int = 0,
    overwrite: bool = False,
    progress: bool = True,
) -> EvaluationResult:
    """Scores ``predict`` on every (instance, text) pair of ``dataset`` under ``protocol``.

    Args:
        predict: the model, ``predict(images, prompts) -> alphas`` (see :data:`Predictor`).
        dataset: rows of the common schema (:func:`load_protocol_dataset`).
        protocol: a key of :data:`PROTOCOLS` or an :class:`EvaluationProtocol`.
        output_dir: where ``run.json``, ``samples.csv``, ``metrics.json`` and ``results.md`` go; a run there is
            resumed. ``None`` keeps everything in memory.
        run_info: what identifies the model (e.g. ``{"model": checkpoint path}``) and anything else the numbers
            depend on; stored in ``run.json`` and compared on resume.
        resolution: override of the protocol's resolution (an int side, or ``None`` for full resolution).
        text_type_names: names of the text indices for sets without ``text_types`` (e.g. ``["keyword", "basic",
            "absolute", "relative"]`` once RefMatte's order is checked); default ``text_<index>``.
        batch_size: (image, text) pairs per ``predict`` call.
        max_samples: score only the first ``max_samples`` pairs (in dataset order; a later run with a larger value
            or none resumes from them).
        grad_variant / conn_variant: see :func:`diffusers_matte.metrics.grad` / ``conn``; ``"matlab"`` is DIM's.
        device / dtype: reported with the timings (and ``dtype`` checked on resume).
        warmup: untimed ``predict`` calls on the first batch before timing (CUDA initialisation, autotuning).
        metric_workers: processes computing the metrics while the model runs (0: in this process). The numbers
            are the same either way.
        overwrite: discard the results of a different run in ``output_dir`` instead of refusing.
        progress: show a tqdm bar.
    """
    protocol = get_protocol(protocol)
    resolution = protocol.resolution if resolution == "protocol" else resolution
    _check_evaluate_args(resolution, batch_size, max_samples, grad_variant, conn_variant, metric_workers)
    header = {
        "format": HEADER_FORMAT,
        "protocol": protocol.name,
        "resolution": resolution,
        "text_type_names": None if text_type_names is None else list(text_type_names),
        "grad_variant": grad_variant,
        "conn_variant": conn_variant,
        "dtype": dtype,
        **(run_info or {}),
    }
    samples = list_samples(dataset, text_type_names)[:max_samples]
    out = None if output_dir is None else Path(output_dir)
    done: Dict[Tuple[str, int], Dict[str, Any]] = {}
    if out is not None:
        check_header(out, header, overwrite)
        done = _read_done(out)
    pending = [s for s in samples if s.key not in done]

    appender = CsvAppender(None if out is None else out / SAMPLES_FILE)
    from tqdm.auto import tqdm

    bar = tqdm(
        total=len(samples), initial=len(samples) - len(pending), desc=f"evaluate {protocol.name}",
        unit="sample", disable=not progress,
    )  # fmt: skip
    new_rows: Dict[Tuple[str, int], Dict[str, Any]] = {}
    cache: Dict[int, Tuple[np.ndarray, np.ndarray]] = {}
    scorer = _Scorer(metric_workers, grad_variant, conn_variant)
    try:
        for start in range(0, len(pending), batch_size):
            batch = pending[start : start + batch_size]
            pairs = _load_batch(dataset, batch, resolution, cache)
            predictions, seconds = _timed_predict(predict, batch, pairs, warmup if start == 0 else 0)
            jobs = [
                (sample, gt, as_alpha(prediction, gt.shape, sample), seconds, device)
                for sample, (_, gt), prediction in zip(batch, pairs, predictions)
            ]
            for rows in scorer.submit(jobs):
                appender.write(rows)
                new_rows.update(((r["instance_id"], r["text_index"]), r) for r in rows)
                bar.update(len(rows))
        for rows in scorer.drain():
            appender.write(rows)
            new_rows.update(((r["instance_id"], r["text_index"]), r) for r in rows)
            bar.update(len(rows))
    finally:
        scorer.close()
        appender.close()
        bar.close()

    # With an output folder, the CSV is the record (its rows read back exactly).
    done = _read_done(out) if out is not None else {**done, **new_rows}
    rows = [done[s.key] for s in samples if s.key in done]
    summary = summarize(rows, header, total=len(samples), device=device)
    result = EvaluationResult(summary, rows, out)
    if out is not None:
        (out / METRICS_FILE).write_text(json.dumps(summary, indent=1) + "\n")
        (out / TABLE_FILE).write_text(result.to_markdown())
    return result


def _check_evaluate_args(resolution, batch_size, max_samples, grad_variant, conn_variant, metric_workers) -> None:
    if not isinstance(metric_workers, int) or metric_workers < 0:
        raise ValueError(f"`metric_workers` must be an integer >= 0, got {metric_workers!r}.")
    if resolution is not None and (not isinstance(resolution, int) or resolution < 1):
        raise ValueError(f"`resolution` must be a positive int or None, got {resolution!r}.")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"`batch_size` must be a positive integer, got {batch_size!r}.")
    if max_samples is not None and max_samples < 1:
        raise ValueError(f"`max_samples` must be a positive integer, got {max_samples!r}.")
    for name, variant in (
        ("grad_variant", grad_variant),
        ("conn_variant", conn_variant),
    ):
        if variant not in VARIANTS:
            raise ValueError(f"`{name}` must be one of {VARIANTS}, got {variant!r}.")


def _read_done(out: Path) -> Dict[Tuple[str, int], Dict[str, Any]]:
    rows = read_samples_csv(out / SAMPLES_FILE)
    return {(r["instance_id"], r["text_index"]): r for r in rows}


def _timed_predict(predict: Predictor, batch: List[Sample], pairs, warmup: int) -> Tuple[Sequence[Any], float]:
    """The predictions of one batch and the wall time of the call per pair (after ``warmup`` untimed calls)."""
    images = [image for image, _ in pairs]
    prompts = [sample.text for sample in batch]
    for _ in range(warmup):
        predict(images, prompts)
    synchronize()
    tic = time.perf_counter()
    predictions = predict(images, prompts)
    synchronize()
    seconds = (time.perf_counter() - tic) / len(batch)
    if len(predictions) != len(batch):
        raise ValueError(f"the predictor returned {len(predictions)} alphas for {len(batch)} (image, prompt) pairs.")
    return predictions, seconds


def _score(
    sample: Sample,
    gt: np.ndarray,
    pred: np.ndarray,
    seconds: float,
    device: Optional[str],
    grad_variant: str,
    conn_variant: str,
) -> Dict[str, Any]:
    """One CSV row: the sample's keys and text, the four metrics (whole image) and the time."""
    scores = all_metrics(pred, gt, grad_variant=grad_variant, conn_variant=conn_variant)
    return {
        "instance_id": sample.instance_id, "text_index": sample.text_index,
        "text_type": sample.text_type, "image_id": sample.image_id,
        "height": gt.shape[0], "width": gt.shape[1], **scores,
        "seconds": seconds, "device": str(device or ""), "text": sample.text,
    }  # fmt: skip


class _Scorer:
    """Scores batches in this process (``workers=0``) or in worker processes while the model runs on.

    At 512x512, GRAD and CONN take about 0.1 s per sample on one core, more than a GPU model call; workers keep
    the metrics off the critical path. Rows come back batch by batch in submission order.
    """

    def __init__(self, workers: int, grad_variant: str, conn_variant: str):
        self.variants = (grad_variant, conn_variant)
        self.executor = None
        self.queue: deque = deque()
        if workers > 0:
            from concurrent.futures import ProcessPoolExecutor

            self.executor = ProcessPoolExecutor(workers)
        self.max_queued = max(2, workers)  # batches in flight: bounds the memory of queued predictions

    def submit(self, jobs: List[tuple]) -> List[List[Dict[str, Any]]]:
        """Queues one batch; returns the batches finished so far (in order)."""
        if self.executor is None:
            return [[_score(*job, *self.variants) for job in jobs]]
        self.queue.append([self.executor.submit(_score, *job, *self.variants) for job in jobs])
        finished = []
        while self.queue and (len(self.queue) > self.max_queued or all(f.done() for f in self.queue[0])):
            finished.append([f.result() for f in self.queue.popleft()])
        return finished

    def drain(self) -> List[List[Dict[str, Any]]]:
        """Waits for every queued batch."""
        finished = [[f.result() for f in futures] for futures in self.queue]
        self.queue.clear()
        return finished

    def close(self) -> None:
        if self.executor is not None:
            self.executor.shutdown(wait=True, cancel_futures=True)


def _load_batch(dataset, batch: List[Sample], resolution, cache) -> List[Tuple[np.ndarray, np.ndarray]]:
    """(image, gt) per sample; a row's pair is loaded once and shared by its texts (the same image object)."""
    pairs = []
    for sample in batch:
        if sample.row not in cache:
            cache.clear()  # rows come in order: keep only the current one
            cache[sample.row] = load_pair(dataset[sample.row], resolution)
        pairs.append(cache[sample.row])
    return pairs
