# Copyright 2026 The diffusers-matte authors. Licensed under the Apache License, Version 2.0.
"""The evaluation loop: predict, score (optionally in worker processes), append, summarise.

Under ``accelerate launch`` (or ``torchrun``) with N processes, the batches are split among them (contiguous
shares), each process appends its rows to its own file, and the main process merges them and writes the summary:
the same rows, metric values and tables as one process.
"""

from __future__ import annotations

import json
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Set, Tuple, Union

import numpy as np

from ..distributed import Processes, current_processes
from ..metrics import VARIANTS, all_metrics
from .predictors import Predictor, as_alpha, split_predictions, synchronize
from .protocols import EvaluationProtocol, PathLike, Sample, get_protocol, list_samples, load_pair
from .records import (
    HEADER_FORMAT,
    METRICS_FILE,
    SAMPLES_FILE,
    TABLE_FILE,
    CsvAppender,
    RunMismatchError,
    check_header,
    merge_part_files,
    part_file,
    read_all_samples,
)
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
        progress: show a tqdm bar (on the main process only, for its share, when there are several).

    Under ``accelerate launch`` with N processes, call it on every process with the same arguments (``predict`` on
    that process's device): the (image, text) batches are split among the processes, and every process returns
    the same result, gathered from all. ``device`` in the summary is the main process's; the CSV has each row's.
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
    processes = current_processes()
    done_keys = _prepare_output_dir(out, header, overwrite, processes)
    pending = [s for s in samples if s.key not in done_keys]
    # Whole batches go to the processes, so each batch is the one a single process would run.
    batches = processes.split([pending[start : start + batch_size] for start in range(0, len(pending), batch_size)])

    if out is None:
        records = None
    else:
        records = out / SAMPLES_FILE if not processes.is_distributed else part_file(out, processes.process_index)
    appender = CsvAppender(records)
    from tqdm.auto import tqdm

    if processes.is_distributed:  # the main process's share (each process has about as many)
        total, initial = sum(len(batch) for batch in batches), 0
        desc = f"evaluate {protocol.name} (process 1 of {processes.num_processes})"
    else:
        total, initial, desc = len(samples), len(samples) - len(pending), f"evaluate {protocol.name}"
    bar = tqdm(
        total=total, initial=initial, desc=desc, unit="sample", disable=not progress or not processes.is_main_process
    )
    new_rows: Dict[Tuple[str, int], Dict[str, Any]] = {}
    cache: Dict[int, Tuple[np.ndarray, np.ndarray]] = {}
    scorer = _Scorer(metric_workers, grad_variant, conn_variant)
    try:
        for number, batch in enumerate(batches):
            pairs = _load_batch(dataset, batch, resolution, cache)
            predictions, scores, seconds = _timed_predict(predict, batch, pairs, warmup if number == 0 else 0)
            jobs = [
                (sample, gt, as_alpha(prediction, gt.shape, sample), score, seconds, device)
                for sample, (_, gt), prediction, score in zip(batch, pairs, predictions, scores)
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

    processes.wait_for_everyone()
    summary_device = processes.broadcast_object(device)
    order = [s.key for s in samples]
    if out is None:
        done = {}
        for rows in processes.gather_object(list(new_rows.values())):
            done.update(((r["instance_id"], r["text_index"]), r) for r in rows)
        return _result([done[key] for key in order if key in done], header, len(samples), summary_device, None)
    # With an output folder, the CSV is the record (its rows read back exactly).
    result = None
    if processes.is_main_process:
        merge_part_files(out, order)
        done = read_all_samples(out)
        result = _result([done[key] for key in order if key in done], header, len(samples), summary_device, out)
        (out / METRICS_FILE).write_text(json.dumps(result.summary, indent=1) + "\n")
        (out / TABLE_FILE).write_text(result.to_markdown())
    processes.wait_for_everyone()
    if result is None:  # the other processes read what the main process wrote
        done = read_all_samples(out, trim=False)
        result = _result([done[key] for key in order if key in done], header, len(samples), summary_device, out)
    return result


def _result(rows, header, total, device, out) -> EvaluationResult:
    return EvaluationResult(summarize(rows, header, total=total, device=device), rows, out)


def _prepare_output_dir(
    out: Optional[Path], header: Dict[str, Any], overwrite: bool, processes: Processes
) -> Set[Tuple[str, int]]:
    """Checks or writes ``run.json`` and returns the keys already scored, on every process.

    Only the main process touches the folder here (it also cuts lines left incomplete by an interruption); the
    others get its answer, or its refusal, before any process appends a row.
    """
    if out is None:
        return set()
    answer: Tuple[str, Any] = ("ok", [])
    if processes.is_main_process:
        try:
            check_header(out, header, overwrite)
            answer = ("ok", sorted(read_all_samples(out)))
        except RunMismatchError as error:
            answer = ("mismatch", str(error))
            if not processes.is_distributed:
                raise
        except Exception as error:
            answer = ("error", f"{type(error).__name__}: {error}")
            if not processes.is_distributed:
                raise
    kind, value = processes.broadcast_object(answer)
    if kind == "mismatch":
        raise RunMismatchError(value)
    if kind == "error":
        raise RuntimeError(f"the main process could not prepare {out}: {value}")
    return {tuple(key) for key in value}


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


def _timed_predict(
    predict: Predictor, batch: List[Sample], pairs, warmup: int
) -> Tuple[Sequence[Any], List[Optional[float]], float]:
    """The alphas and grounding scores of one batch, and the wall time of the call per pair (after ``warmup``
    untimed calls)."""
    images = [image for image, _ in pairs]
    prompts = [sample.text for sample in batch]
    for _ in range(warmup):
        predict(images, prompts)
    synchronize()
    tic = time.perf_counter()
    predictions = predict(images, prompts)
    synchronize()
    seconds = (time.perf_counter() - tic) / len(batch)
    alphas, scores = split_predictions(predictions, len(batch))
    return alphas, scores, seconds


def _score(
    sample: Sample,
    gt: np.ndarray,
    pred: np.ndarray,
    grounding_score: Optional[float],
    seconds: float,
    device: Optional[str],
    grad_variant: str,
    conn_variant: str,
) -> Dict[str, Any]:
    """One CSV row: the sample's keys and text, the four metrics (whole image), whether the text names something,
    the model's grounding score (None if it gives none) and the time."""
    scores = all_metrics(pred, gt, grad_variant=grad_variant, conn_variant=conn_variant)
    return {
        "instance_id": sample.instance_id, "text_index": sample.text_index,
        "text_type": sample.text_type, "image_id": sample.image_id,
        "height": gt.shape[0], "width": gt.shape[1], **scores,
        "has_target": sample.has_target, "grounding_score": grounding_score,
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
