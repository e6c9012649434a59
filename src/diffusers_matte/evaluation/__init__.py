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

Rows whose text names nothing in the image (``has_target`` False, e.g. the synthetic set generated with a
``no_target_share``) are kept out of the four metrics; the summary's ``grounding`` entry reports instead how well
the model's grounding score (``SoftGroundingMattingOutput.grounding_score``) tells them from rows with a target: its
AUROC, and the share of them rejected by the threshold that rejects 5% of rows with a target (``None`` when the set
has no such rows).

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

from .harness import EvaluationResult, evaluate
from .predictors import BASELINES, Predictor, constant_predictor, pipeline_predictor
from .protocols import (
    PROTOCOLS,
    EvaluationProtocol,
    PathLike,
    get_protocol,
    list_samples,
    load_pair,
    load_protocol_dataset,
)
from .records import (
    CSV_COLUMNS,
    HEADER_FILE,
    METRICS_FILE,
    OUTPUT_FILES,
    SAMPLES_FILE,
    TABLE_FILE,
    RunMismatchError,
    read_samples_csv,
)
from .report import FALSE_REJECTION_RATE, UNITS, auroc, format_markdown, grounding_summary, rejection_at, summarize

__all__ = [
    "BASELINES",
    "CSV_COLUMNS",
    "FALSE_REJECTION_RATE",
    "EvaluationProtocol",
    "EvaluationResult",
    "HEADER_FILE",
    "METRICS_FILE",
    "OUTPUT_FILES",
    "PROTOCOLS",
    "PathLike",
    "Predictor",
    "RunMismatchError",
    "SAMPLES_FILE",
    "TABLE_FILE",
    "UNITS",
    "auroc",
    "constant_predictor",
    "evaluate",
    "format_markdown",
    "get_protocol",
    "grounding_summary",
    "list_samples",
    "load_pair",
    "load_protocol_dataset",
    "pipeline_predictor",
    "read_samples_csv",
    "rejection_at",
    "summarize",
]
