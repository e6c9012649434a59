# Copyright 2026 The diffusers-matte authors. Licensed under the Apache License, Version 2.0.
"""Evaluation harness: a matting model on an evaluation set, scored with SAD, MSE, GRAD and CONN.

A *protocol* fixes how a set is loaded, at which resolution images are fed and scored, and which texts are used
(paper Secs. 4.3 and 4.4):

=================== =========================================== ================================================
protocol            data                                        resolution and texts
=================== =========================================== ================================================
``refmatte_test``   RefMatte test split (:func:`load_refmatte`) image and GT resized to 512x512, whole image,
``refmatte_rw100``  RefMatte-RW100 (:func:`load_refmatte_rw100`) every instance with each of its expressions
``am2k``            AM-2k validation + BLIP-2 caption file      full resolution, the prompts from the captions
``p3m_500_p``       P3M-500-P + caption file                    full resolution, the prompts from the captions
``p3m_500_np``      P3M-500-NP + caption file                   full resolution, the prompts from the captions
``synthetic``       the synthetic test split (generated, or a   native size, every instance with each of its
                    ``save_to_disk`` folder)                    four expressions
=================== =========================================== ================================================

One *sample* is one (instance, text) pair. The model is any callable ``predict(images, prompts) -> alphas``
(:func:`pipeline_predictor` wraps a :class:`SoftGroundingMattingPipeline`, :func:`constant_predictor` gives the
trivial all-zero / all-one baselines). Scores are those of :func:`diffusers_matte.metrics.all_metrics` on the whole
image, with the DIM ``evaluate.m`` scales: SAD = sum |pred - gt| / 1000, MSE raw (not x 1e3), GRAD / 1000 and
CONN / 1000; these are the scales of the paper's tables (e.g. RefMatte-Test SAD 3.19, MSE 0.0098).

With an ``output_dir``, the run is resumable: each sample's row is appended (and flushed) to ``samples.csv`` as soon
as it is scored, keyed by (``instance_id``, ``text_index``); a restart skips the keys already there. ``run.json``
records what the numbers depend on (model, protocol, data, resolutions, precision, metric variants); a restart with
different values is refused unless ``overwrite=True``. ``metrics.json`` and ``results.md`` are written from the CSV.

Python::

    from diffusers_matte.evaluation import evaluate, load_protocol_dataset, pipeline_predictor

    dataset = load_protocol_dataset("refmatte_rw100", data_dir="/data/RefMatte_RW_100")
    result = evaluate(pipeline_predictor(pipe), dataset, "refmatte_rw100", output_dir="eval/rw100",
                      run_info={"model": "my-checkpoint"})
    print(result.to_markdown())

Command line: ``python training/evaluate.py --help`` (or ``diffusers-matte evaluate``).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
from PIL import Image

from .metrics import METRIC_NAMES, VARIANTS, all_metrics

__all__ = [
    "BASELINES",
    "PROTOCOLS",
    "EvaluationProtocol",
    "EvaluationResult",
    "RunMismatchError",
    "add_evaluate_arguments",
    "constant_predictor",
    "evaluate",
    "load_protocol_dataset",
    "pipeline_predictor",
    "run_evaluate",
    "summarize",
]

PathLike = Union[str, os.PathLike]
#: ``predict(images, prompts) -> alphas``: ``images`` are RGB uint8 (H, W, 3) arrays (the same object repeated when
#: several prompts refer to one image), ``prompts`` one string per image; one alpha in [0, 1] per image, at that
#: image's size, as (H, W), (H, W, 1) or (1, H, W) arrays or tensors.
Predictor = Callable[[List[np.ndarray], List[str]], Sequence[Any]]

SAMPLES_FILE = "samples.csv"
HEADER_FILE = "run.json"
METRICS_FILE = "metrics.json"
TABLE_FILE = "results.md"
OUTPUT_FILES = (SAMPLES_FILE, HEADER_FILE, METRICS_FILE, TABLE_FILE)
CSV_COLUMNS = (
    ("instance_id", "text_index", "text_type", "image_id", "height", "width")
    + METRIC_NAMES
    + ("seconds", "device", "text")
)
HEADER_FORMAT = 1
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
BASELINES = {"zeros": 0.0, "ones": 1.0}


class RunMismatchError(ValueError):
    """The output folder holds results of a different run (model, protocol, data, ...)."""


# ----------------------------------------------------------------------------------------------------------------
# Protocols and data
# ----------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EvaluationProtocol:
    """How one evaluation set is scored.

    Args:
        name: the protocol's key in :data:`PROTOCOLS`.
        description: one line for tables and ``--help``.
        resolution: side of the square that image and ground truth are resized to (bicubic / bilinear) before
            prediction and scoring; ``None`` keeps each image's own size.
        uses_captions: the set has no text of its own and needs a caption side-file (AM-2k, P3M).
    """

    name: str
    description: str
    resolution: Optional[int]
    uses_captions: bool = False


PROTOCOLS: Dict[str, EvaluationProtocol] = {
    p.name: p
    for p in (
        # Sec. 4.3: "the input resolution for all methods is set to 512x512, and the metrics are also calculated on
        # this resolution"; every instance with each of its 4 expressions.
        EvaluationProtocol("refmatte_test", "RefMatte-Test, 512x512, all expressions", 512),
        EvaluationProtocol("refmatte_rw100", "RefMatte-RW100, 512x512, all expressions", 512),
        # Sec. 4.4: "All the metrics are calculated in full resolution"; texts are BLIP-2 captions (Sec. 4.1).
        EvaluationProtocol("am2k", "AM-2k validation, full resolution, captions", None, True),
        EvaluationProtocol("p3m_500_p", "P3M-500-P, full resolution, captions", None, True),
        EvaluationProtocol("p3m_500_np", "P3M-500-NP, full resolution, captions", None, True),
        EvaluationProtocol("synthetic", "synthetic test split, native size, all expressions", None),
    )
}


def get_protocol(protocol: Union[str, EvaluationProtocol]) -> EvaluationProtocol:
    """The :class:`EvaluationProtocol` named ``protocol`` (or ``protocol`` itself)."""
    if isinstance(protocol, EvaluationProtocol):
        return protocol
    if protocol not in PROTOCOLS:
        raise ValueError(f"`protocol` must be one of {sorted(PROTOCOLS)}, got {protocol!r}.")
    return PROTOCOLS[protocol]


def load_protocol_dataset(
    protocol: Union[str, EvaluationProtocol],
    data_dir: Optional[PathLike] = None,
    captions_file: Optional[PathLike] = None,
    cache_dir: Optional[PathLike] = None,
    synthetic_num_test: int = 200,
    synthetic_seed: int = 0,
    synthetic_image_size: int = 256,
):
    """The evaluation split of ``protocol`` as a :class:`datasets.Dataset` (the rows of :mod:`diffusers_matte.data`).

    Args:
        protocol: a key of :data:`PROTOCOLS`.
        data_dir: the user's copy of the set. For ``synthetic``, a ``DatasetDict.save_to_disk`` folder (its
            ``test`` split is used) or ``None`` to generate the split from ``synthetic_*``.
        captions_file: caption side-file (``training/caption_dataset.py``) of AM-2k / P3M; required there.
        cache_dir: ``datasets`` cache folder.
        synthetic_num_test / synthetic_seed / synthetic_image_size: the generated synthetic split
            (:func:`load_synthetic_matting` arguments).
    """
    protocol = get_protocol(protocol)
    if captions_file is not None and not protocol.uses_captions:
        raise ValueError(
            f"`captions_file` is for the caption-based protocols (am2k, p3m_500_p, p3m_500_np); "
            f"{protocol.name!r} has its own expressions."
        )
    if protocol.uses_captions and captions_file is None:
        raise ValueError(
            f"protocol {protocol.name!r} needs `captions_file` (the set has no text; write one with "
            "training/caption_dataset.py)."
        )
    if protocol.name == "synthetic":
        return _load_synthetic(
            data_dir,
            cache_dir,
            synthetic_num_test,
            synthetic_seed,
            synthetic_image_size,
        )
    if data_dir is None:
        raise ValueError(f"protocol {protocol.name!r} needs `data_dir`, the folder of your copy of the set.")
    if protocol.name == "refmatte_test":
        from .data.refmatte import load_refmatte

        return load_refmatte(data_dir, split="test", cache_dir=cache_dir)
    if protocol.name == "refmatte_rw100":
        from .data.refmatte_rw100 import load_refmatte_rw100

        return load_refmatte_rw100(data_dir, cache_dir=cache_dir)
    if protocol.name == "am2k":
        from .data.am2k import load_am2k

        return load_am2k(data_dir, "validation", captions_file, cache_dir)
    from .data.p3m import load_p3m10k

    return load_p3m10k(data_dir, protocol.name, captions_file, cache_dir)


def _load_synthetic(data_dir, cache_dir, num_test, seed, image_size):
    import datasets

    if data_dir is not None:
        loaded = datasets.load_from_disk(str(data_dir))
        if isinstance(loaded, datasets.DatasetDict):
            if "test" not in loaded:
                raise ValueError(
                    f"{data_dir} holds the splits {sorted(loaded)}, but the synthetic protocol uses 'test'."
                )
            loaded = loaded["test"]
        return loaded
    from .data.synthetic import load_synthetic_matting

    return load_synthetic_matting(0, num_test, seed, image_size, cache_dir)["test"]


@dataclass(frozen=True)
class _Sample:
    row: int
    instance_id: str
    image_id: str
    text_index: int
    text: str
    text_type: str

    @property
    def key(self) -> Tuple[str, int]:
        return (self.instance_id, self.text_index)


def list_samples(dataset, text_type_names: Optional[Sequence[str]] = None) -> List[_Sample]:
    """Every (instance, text) pair of ``dataset``, in row order then text order.

    A text's type is the row's ``text_types`` entry; where the set gives none (RefMatte, RW100), it is
    ``text_type_names[index]`` if given, else ``text_<index>``.
    """
    columns = {name: list(dataset[name]) for name in ("texts", "text_types", "instance_id", "image_id")}
    seen, samples = set(), []
    for row, (texts, types, instance_id, image_id) in enumerate(zip(*columns.values())):
        if instance_id in seen:
            raise ValueError(f"instance_id {instance_id!r} appears twice in the dataset; keys must be unique.")
        seen.add(instance_id)
        if not texts:
            raise ValueError(
                f"instance {instance_id!r} has no text; for sets without expressions pass a captions file."
            )
        for index, text in enumerate(texts):
            if types:
                kind = types[index]
            elif text_type_names is not None and index < len(text_type_names):
                kind = text_type_names[index]
            else:
                kind = f"text_{index}"
            samples.append(_Sample(row, instance_id, image_id, index, text, kind))
    return samples


def load_pair(row: Dict[str, Any], resolution: Optional[int]) -> Tuple[np.ndarray, np.ndarray]:
    """RGB uint8 image and float64 alpha in [0, 1] of a dataset row, resized to ``resolution`` squared if given.

    The resize follows the training transform (bicubic image, bilinear 8-bit alpha), so the model sees what it was
    trained on and the ground truth is the 512x512 matte the paper scores against.
    """
    image = row["image"].convert("RGB")
    alpha = row["alpha"].convert("L")
    if image.size != alpha.size:
        raise ValueError(
            f"instance {row['instance_id']!r}: image size {image.size} and alpha size {alpha.size} differ."
        )
    if resolution is not None:
        image = image.resize((resolution, resolution), Image.BICUBIC)
        alpha = alpha.resize((resolution, resolution), Image.BILINEAR)
    return np.asarray(image), np.asarray(alpha, dtype=np.float64) / 255.0


# ----------------------------------------------------------------------------------------------------------------
# Predictors
# ----------------------------------------------------------------------------------------------------------------


def constant_predictor(value: float) -> Predictor:
    """A trivial baseline predicting the same alpha ``value`` everywhere (0: nothing, 1: everything)."""
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"`value` must be in [0, 1], got {value}.")

    def predict(images: List[np.ndarray], prompts: List[str]) -> List[np.ndarray]:
        return [np.full(image.shape[:2], value, dtype=np.float32) for image in images]

    return predict


def pipeline_predictor(pipeline, processing_resolution: Optional[int] = None) -> Predictor:
    """Wraps a :class:`SoftGroundingMattingPipeline` as a :data:`Predictor`.

    Pairs that share an image object are passed as one image with several prompts, so each image is encoded once;
    all pairs of a call run through the models together. Outputs are at the input's size.
    """

    def predict(images: List[np.ndarray], prompts: List[str]) -> List[np.ndarray]:
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
        ).alpha
        alphas: List[Any] = [None] * len(images)
        # The pipeline returns the pairs image by image, each image's prompts in order.
        for k, alpha in zip((k for g in groups for k in g), output):
            alphas[k] = alpha
        return alphas

    return predict


def _as_alpha(value: Any, shape: Tuple[int, int], sample: _Sample) -> np.ndarray:
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


def _synchronize() -> None:
    """Waits for queued CUDA work so that wall times cover it (asynchronous kernels)."""
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency
        return
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()


# ----------------------------------------------------------------------------------------------------------------
# Output folder: header, resumable CSV
# ----------------------------------------------------------------------------------------------------------------


def _check_header(output_dir: Path, header: Dict[str, Any], overwrite: bool) -> None:
    """Writes ``run.json``, or checks that the one there describes the same run (else refuses / starts over)."""
    header_path = output_dir / HEADER_FILE
    existing = [name for name in OUTPUT_FILES if (output_dir / name).exists()]
    if existing and not overwrite:
        if not header_path.is_file():
            raise RunMismatchError(
                f"{output_dir} holds {existing} but no {HEADER_FILE}; use another output folder or overwrite."
            )
        previous = json.loads(header_path.read_text())
        differences = {
            key: (previous.get(key), header.get(key))
            for key in sorted(set(previous) | set(header))
            if previous.get(key) != header.get(key)
        }
        if differences:
            listed = "; ".join(f"{key}: {old!r} there, {new!r} now" for key, (old, new) in differences.items())
            raise RunMismatchError(
                f"{output_dir} holds the results of a different run ({listed}); use another output folder, or "
                "pass overwrite=True (--overwrite) to discard them."
            )
        return
    for name in existing:
        (output_dir / name).unlink()
    output_dir.mkdir(parents=True, exist_ok=True)
    header_path.write_text(json.dumps(header, indent=1, sort_keys=True) + "\n")


def read_samples_csv(path: Path) -> List[Dict[str, Any]]:
    """Rows of a ``samples.csv`` with typed values; an incomplete last line (an interrupted write) is dropped."""
    if not path.is_file():
        return []
    _drop_partial_line(path)
    rows = []
    with open(path, newline="", encoding="utf-8") as handle:
        for raw in csv.DictReader(handle):
            # device may be empty; a cut-off row lacks its numbers
            if any(raw.get(n) in (None, "") for n in CSV_COLUMNS if n != "device"):
                continue
            rows.append(_typed(raw))
    return rows


def _typed(raw: Dict[str, str]) -> Dict[str, Any]:
    row: Dict[str, Any] = dict(raw)
    for name in ("text_index", "height", "width"):
        row[name] = int(raw[name])
    for name in METRIC_NAMES + ("seconds",):
        row[name] = float(raw[name])
    return row


def _drop_partial_line(path: Path) -> None:
    """Cuts the file after its last newline, so that appending starts on a fresh line."""
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        path.write_bytes(data[: data.rfind(b"\n") + 1])


class _CsvAppender:
    """Appends sample rows to the CSV, flushed to disk after each batch."""

    def __init__(self, path: Optional[Path]):
        self.handle = None
        if path is None:
            return
        new = not path.is_file() or path.stat().st_size == 0
        self.handle = open(path, "a", newline="", encoding="utf-8")
        self.writer = csv.DictWriter(self.handle, fieldnames=CSV_COLUMNS)
        if new:
            self.writer.writeheader()

    def write(self, rows: List[Dict[str, Any]]) -> None:
        if self.handle is None:
            return
        self.writer.writerows(rows)  # floats as repr: they read back exactly
        self.handle.flush()
        os.fsync(self.handle.fileno())

    def close(self) -> None:
        if self.handle is not None:
            self.handle.close()


# ----------------------------------------------------------------------------------------------------------------
# The loop
# ----------------------------------------------------------------------------------------------------------------


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
        _check_header(out, header, overwrite)
        done = _read_done(out)
    pending = [s for s in samples if s.key not in done]

    appender = _CsvAppender(None if out is None else out / SAMPLES_FILE)
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
                (sample, gt, _as_alpha(prediction, gt.shape, sample), seconds, device)
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


def _timed_predict(predict: Predictor, batch: List[_Sample], pairs, warmup: int) -> Tuple[Sequence[Any], float]:
    """The predictions of one batch and the wall time of the call per pair (after ``warmup`` untimed calls)."""
    images = [image for image, _ in pairs]
    prompts = [sample.text for sample in batch]
    for _ in range(warmup):
        predict(images, prompts)
    _synchronize()
    tic = time.perf_counter()
    predictions = predict(images, prompts)
    _synchronize()
    seconds = (time.perf_counter() - tic) / len(batch)
    if len(predictions) != len(batch):
        raise ValueError(f"the predictor returned {len(predictions)} alphas for {len(batch)} (image, prompt) pairs.")
    return predictions, seconds


def _score(
    sample: _Sample,
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


def _load_batch(dataset, batch: List[_Sample], resolution, cache) -> List[Tuple[np.ndarray, np.ndarray]]:
    """(image, gt) per sample; a row's pair is loaded once and shared by its texts (the same image object)."""
    pairs = []
    for sample in batch:
        if sample.row not in cache:
            cache.clear()  # rows come in order: keep only the current one
            cache[sample.row] = load_pair(dataset[sample.row], resolution)
        pairs.append(cache[sample.row])
    return pairs


# ----------------------------------------------------------------------------------------------------------------
# Summary and writers
# ----------------------------------------------------------------------------------------------------------------


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


# ----------------------------------------------------------------------------------------------------------------
# Command line (training/evaluate.py and `diffusers-matte evaluate`)
# ----------------------------------------------------------------------------------------------------------------


def add_evaluate_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Adds the evaluation options to ``parser`` (each with a dashed and an underscored spelling)."""

    def add(name: str, **kwargs) -> None:
        # --max-samples and --max_samples (the training scripts' spelling); dest is max_samples either way.
        underscored = "--" + name[2:].replace("-", "_")
        parser.add_argument(*dict.fromkeys((name, underscored)), **kwargs)

    model = parser.add_mutually_exclusive_group(required=True)
    model.add_argument("--model", help="pipeline folder or Hub id of the checkpoint to evaluate")
    model.add_argument(
        "--baseline",
        choices=sorted(BASELINES),
        help="a trivial constant alpha instead of a model",
    )
    add(
        "--protocol",
        required=True,
        choices=sorted(PROTOCOLS),
        help="; ".join(f"{p.name}: {p.description}" for p in PROTOCOLS.values()),
    )
    add(
        "--data-dir",
        default=None,
        help="your copy of the set (synthetic: a save_to_disk folder, or none to generate the split)",
    )
    add(
        "--captions-file",
        default=None,
        help="caption side-file of AM-2k / P3M (training/caption_dataset.py)",
    )
    add("--cache-dir", default=None, help="datasets cache folder")
    add(
        "--output-dir",
        required=True,
        help="where run.json, samples.csv, metrics.json and results.md go",
    )
    add(
        "--overwrite",
        action="store_true",
        help="discard the results of a different run in --output-dir",
    )
    add(
        "--max-samples",
        type=int,
        default=None,
        help="score only the first N (instance, text) pairs",
    )
    add("--batch-size", type=int, default=1, help="(image, text) pairs per model call")
    add(
        "--device",
        default=None,
        help="torch device (default: cuda, then mps, then cpu)",
    )
    add(
        "--dtype",
        default=None,
        choices=("float32", "float16", "bfloat16"),
        help="model precision (default: float16 on cuda, float32 elsewhere)",
    )
    add(
        "--resolution",
        type=int,
        default=None,
        help="override the protocol's resolution: side of the square images and GT are resized to; 0 = full",
    )
    add(
        "--processing-resolution",
        type=int,
        default=None,
        help="longest edge the pipeline processes at (default: the pipeline's own)",
    )
    add(
        "--text-type-names",
        default=None,
        help="comma-separated names of the text indices for sets without text types, e.g. keyword,basic,absolute,relative",
    )
    add(
        "--grad-variant",
        default="matlab",
        choices=VARIANTS,
        help="GRAD code family (matlab = DIM evaluate.m)",
    )
    add(
        "--conn-variant",
        default="matlab",
        choices=VARIANTS,
        help="CONN code family (matlab = DIM evaluate.m)",
    )
    add("--warmup", type=int, default=1, help="untimed model calls before timing")
    add(
        "--metric-workers",
        type=int,
        default=0,
        help="processes computing the metrics while the model runs (512^2 GRAD+CONN: ~0.1 s/sample/core)",
    )
    add(
        "--synthetic-num-test",
        type=int,
        default=200,
        help="generated synthetic split: number of images",
    )
    add("--synthetic-seed", type=int, default=0, help="generated synthetic split: seed")
    add(
        "--synthetic-image-size",
        type=int,
        default=256,
        help="generated synthetic split: image side",
    )
    add("--no-progress", action="store_true", help="no progress bar")
    return parser


def checkpoint_fingerprint(path: PathLike) -> str:
    """A short hash identifying a local checkpoint folder's contents, cheaply: the text of its JSON/text files and
    the size and modification time of the others (weights), so a checkpoint re-trained into the same folder is
    told apart without hashing gigabytes."""
    import hashlib

    root = Path(path)
    digest = hashlib.sha256()
    for file in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(str(file.relative_to(root)).encode())
        if file.suffix in (".json", ".txt"):
            digest.update(file.read_bytes())
        else:
            stat = file.stat()
            digest.update(f"{stat.st_size}:{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:16]


def _predictor_from_args(
    args: argparse.Namespace,
) -> Tuple[Predictor, str, Optional[str], Dict[str, Any]]:
    """The predictor, its device and dtype, and what identifies the model in ``run.json``."""
    from .cli import load_pipeline, resolve_device_and_dtype

    if args.baseline is not None:
        return (
            constant_predictor(BASELINES[args.baseline]),
            "cpu",
            None,
            {"model": f"baseline:{args.baseline}"},
        )
    device, torch_dtype = resolve_device_and_dtype(args.device, args.dtype)
    pipeline = load_pipeline(args.model, device, torch_dtype)
    predict = pipeline_predictor(pipeline, args.processing_resolution)
    info: Dict[str, Any] = {"model": args.model}
    if os.path.isdir(args.model):
        info = {
            "model": str(Path(args.model).resolve()),
            "model_fingerprint": checkpoint_fingerprint(args.model),
        }
    return predict, str(device), str(torch_dtype).replace("torch.", ""), info


def run_evaluate(args: argparse.Namespace) -> int:
    """Runs the evaluation the parsed ``args`` describe (see :func:`add_evaluate_arguments`), prints the table.

    Bad input raises ``diffusers_matte.cli.UsageError`` (a one-line message, exit code 2 in the CLI).
    """
    from .cli import UsageError

    if args.batch_size < 1 or (args.max_samples is not None and args.max_samples < 1):
        raise UsageError("--batch-size and --max-samples must be positive integers")
    if args.metric_workers < 0:
        raise UsageError(f"--metric-workers must be >= 0, got {args.metric_workers}")
    resolution: Union[int, None, str] = "protocol"
    if args.resolution is not None:
        if args.resolution < 0:
            raise UsageError(f"--resolution must be >= 0 (0: full resolution), got {args.resolution}")
        resolution = args.resolution or None
    names = None if args.text_type_names is None else [n.strip() for n in args.text_type_names.split(",")]
    try:
        dataset = load_protocol_dataset(
            args.protocol, args.data_dir, args.captions_file, args.cache_dir,
            args.synthetic_num_test, args.synthetic_seed, args.synthetic_image_size,
        )  # fmt: skip
    except (ValueError, FileNotFoundError) as error:
        raise UsageError(str(error)) from None
    predict, device, dtype, model_info = _predictor_from_args(args)
    data = args.data_dir and str(Path(args.data_dir).resolve())
    if args.protocol == "synthetic" and args.data_dir is None:
        data = f"generated: num_test={args.synthetic_num_test}, seed={args.synthetic_seed}, size={args.synthetic_image_size}"
    run_info = {
        **model_info, "data": data, "processing_resolution": args.processing_resolution,
        "captions_file": args.captions_file and str(Path(args.captions_file).resolve()),
    }  # fmt: skip
    try:
        result = evaluate(
            predict, dataset, args.protocol, args.output_dir, run_info=run_info, resolution=resolution,
            text_type_names=names, batch_size=args.batch_size, max_samples=args.max_samples,
            grad_variant=args.grad_variant, conn_variant=args.conn_variant, device=str(device), dtype=dtype,
            warmup=args.warmup, metric_workers=args.metric_workers, overwrite=args.overwrite, progress=not args.no_progress,
        )  # fmt: skip
    except RunMismatchError as error:
        raise UsageError(str(error)) from None
    print(result.to_markdown())
    print(f"wrote {', '.join(OUTPUT_FILES)} in {args.output_dir}")
    return 0
