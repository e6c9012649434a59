# Copyright 2026 The diffusers-matte authors. Licensed under the Apache License, Version 2.0.
"""`diffusers-matte evaluate` (and `training/evaluate.py`): the evaluation harness of
`diffusers_matte.evaluation` from the command line.

Under `accelerate launch -m diffusers_matte evaluate ...` with N processes, each process loads the model on its own
device and scores its share of the samples; the main process writes the files and prints the table.
"""

import argparse
import os
from pathlib import Path
from typing import Any, Dict, Optional, Tuple, Union

from ..distributed import current_processes, process_device
from ..evaluation import (
    BASELINES,
    OUTPUT_FILES,
    PROTOCOLS,
    PathLike,
    Predictor,
    RunMismatchError,
    constant_predictor,
    evaluate,
    load_protocol_dataset,
    pipeline_predictor,
)
from ..metrics import VARIANTS
from .common import (
    UsageError,
    add_device_arguments,
    add_model_loading_arguments,
    add_vae_arguments,
    load_pipeline,
    option_spellings,
    resolve_device_and_dtype,
)


def register(subparsers) -> None:
    """Adds `diffusers-matte evaluate`."""
    parser = subparsers.add_parser(
        "evaluate",
        help="score a checkpoint on an evaluation set (SAD, MSE, GRAD, CONN, time)",
    )
    add_evaluate_arguments(parser).set_defaults(run=run_evaluate)


def add_evaluate_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Adds the evaluation options to ``parser``, each with a dashed and an underscored spelling
    (``--max-samples`` and ``--max_samples``, the training scripts' spelling; see ``option_spellings``)."""

    def add(name: str, **kwargs) -> None:
        parser.add_argument(*option_spellings(name, underscored=True), **kwargs)

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
    add_device_arguments(parser, per_process=True)
    add_model_loading_arguments(parser, underscored=True)
    add_vae_arguments(parser)
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
        help="longest edge the models see (default: the model's own)",
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
    add(
        "--synthetic-no-target-share",
        type=float,
        default=0.0,
        help="generated synthetic split: share of images that also get a text naming nothing in them (scored "
        "apart: the grounding score's AUROC and rejection rate)",
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
    if args.baseline is not None:
        return (
            constant_predictor(BASELINES[args.baseline]),
            "cpu",
            None,
            {"model": f"baseline:{args.baseline}"},
        )
    device, torch_dtype = resolve_device_and_dtype(process_device(args.device), args.dtype)
    pipeline = load_pipeline(
        args.model, device, torch_dtype, args.trust_remote_code, args.allow_pickle, vae=args.vae, fast=args.fast
    )
    predict = pipeline_predictor(pipeline, args.processing_resolution)
    info: Dict[str, Any] = {"model": args.model}
    if os.path.isdir(args.model):
        info = {
            "model": str(Path(args.model).resolve()),
            "model_fingerprint": checkpoint_fingerprint(args.model),
        }
    return predict, str(device), str(torch_dtype).replace("torch.", ""), {**info, **_vae_info(args)}


def _vae_info(args: argparse.Namespace) -> Dict[str, Any]:
    """What identifies the VAE of `--vae` or `--fast` in ``run.json`` (nothing for the model's own, so that runs
    without them resume as before)."""
    if args.fast:
        return {"fast": True}
    if args.vae is None:
        return {}
    if not os.path.isdir(args.vae):
        return {"vae": args.vae}
    return {"vae": str(Path(args.vae).resolve()), "vae_fingerprint": checkpoint_fingerprint(args.vae)}


def run_evaluate(args: argparse.Namespace) -> int:
    """Runs the evaluation the parsed ``args`` describe (see :func:`add_evaluate_arguments`), prints the table.

    Bad input raises :class:`UsageError` (a one-line message, exit code 2 in the CLI).
    """
    if args.batch_size < 1 or (args.max_samples is not None and args.max_samples < 1):
        raise UsageError("--batch-size and --max-samples must be positive integers")
    if args.metric_workers < 0:
        raise UsageError(f"--metric-workers must be >= 0, got {args.metric_workers}")
    if args.baseline is not None and (args.vae is not None or args.fast):
        raise UsageError("--vae and --fast choose the VAE of a --model; a --baseline has none")
    resolution: Union[int, None, str] = "protocol"
    if args.resolution is not None:
        if args.resolution < 0:
            raise UsageError(f"--resolution must be >= 0 (0: full resolution), got {args.resolution}")
        resolution = args.resolution or None
    names = None if args.text_type_names is None else [n.strip() for n in args.text_type_names.split(",")]
    processes = current_processes()
    try:
        with processes.main_process_first():  # a generated or converted set is cached once
            dataset = load_protocol_dataset(
                args.protocol, args.data_dir, args.captions_file, args.cache_dir,
                args.synthetic_num_test, args.synthetic_seed, args.synthetic_image_size,
                args.synthetic_no_target_share,
            )  # fmt: skip
    except (ValueError, FileNotFoundError) as error:
        raise UsageError(str(error)) from None
    predict, device, dtype, model_info = _predictor_from_args(args)
    data = args.data_dir and str(Path(args.data_dir).resolve())
    if args.protocol == "synthetic" and args.data_dir is None:
        data = f"generated: num_test={args.synthetic_num_test}, seed={args.synthetic_seed}, size={args.synthetic_image_size}"
        if args.synthetic_no_target_share > 0:  # only then, so that earlier runs still resume
            data += f", no_target_share={args.synthetic_no_target_share:g}"
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
    if processes.is_main_process:
        print(result.to_markdown())
        print(f"wrote {', '.join(OUTPUT_FILES)} in {args.output_dir}")
    return 0
