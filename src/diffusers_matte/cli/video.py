# Copyright 2026 The diffusers-matte authors. Licensed under the Apache License, Version 2.0.
"""`diffusers-matte video`: the alpha matte of what each prompt names in every frame of a video
(`diffusers_matte.video`), streamed frame by frame."""

import sys
from pathlib import Path

from .common import (
    UsageError,
    add_device_arguments,
    add_model_loading_arguments,
    add_vae_arguments,
    load_pipeline,
    resolve_device_and_dtype,
)

DEFAULT_SMOOTHING = 0.6  # `diffusers_matte.video.DEFAULT_SMOOTHING`, repeated so that --help imports no torch


def register(subparsers) -> None:
    """Adds `diffusers-matte video`."""
    parser = subparsers.add_parser(
        "video",
        help="write an alpha video (and an RGBA cut-out) of what each prompt names in a video",
        description="Matte every frame of a video (any format FFmpeg reads). Per prompt it writes "
        "<video stem>_<prompt>_alpha.webm, a grayscale alpha video (VP9, lossless), and with --cutout "
        "<stem>_<prompt>_cutout.webm (VP9 with alpha) or, with --png, a folder of RGBA PNGs. The outputs keep "
        'the input\'s frame rate; audio is not copied. Needs `pip install "diffusers-matte[video]"`.',
    )
    parser.add_argument("input", metavar="INPUT", help="the video file")
    parser.add_argument(
        "--prompt",
        action="append",
        required=True,
        help="what to matte; repeat for several mattes (each prompt is encoded once)",
    )
    parser.add_argument(
        "--output-dir",
        default="mattes",
        help="where to write the outputs (default: ./mattes)",
    )
    parser.add_argument(
        "--model",
        default=None,
        help="pipeline folder or Hub id (default: the built-in demonstration model)",
    )
    parser.add_argument("--cutout", action="store_true", help="also write the RGBA cut-out")
    parser.add_argument(
        "--png",
        action="store_true",
        help="write the cut-out as a PNG sequence instead of a WebM (implies --cutout)",
    )
    parser.add_argument(
        "--temporal-smoothing",
        type=float,
        nargs="?",
        const=DEFAULT_SMOOTHING,
        default=0.0,
        metavar="STRENGTH",
        help="average the alpha over recent frames where the picture is still, not where it moves "
        f"(strength in [0, 1), {DEFAULT_SMOOTHING} when given without a value; default: off)",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    parser.add_argument(
        "--processing-resolution",
        type=int,
        default=None,
        help="longest edge the models see (default: the model's own)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_model_loading_arguments(parser)
    add_vae_arguments(parser)
    add_device_arguments(parser)
    parser.set_defaults(run=run_video)


def run_video(args) -> int:
    """Check everything that can be checked before loading the model, then matte the video."""
    prompts = [p.strip() for p in args.prompt]
    if any(not p for p in prompts):
        raise UsageError("--prompt must not be empty; describe the object to matte")
    if not 0 <= args.temporal_smoothing < 1:
        raise UsageError(f"--temporal-smoothing must be in [0, 1), got {args.temporal_smoothing}")
    if args.processing_resolution is not None and args.processing_resolution < 0:
        raise UsageError(f"--processing-resolution must be >= 0, got {args.processing_resolution}")
    if not Path(args.input).is_file():
        raise UsageError(f"no such file: {args.input!r}")
    try:
        import av  # noqa: F401
    except ImportError:
        raise UsageError('video matting needs PyAV: pip install "diffusers-matte[video]"') from None

    from ..video import matte_video, probe_video, video_outputs

    try:
        info = probe_video(args.input)
        outputs = video_outputs(args.input, prompts, Path(args.output_dir), args.cutout or args.png, args.png)
    except ValueError as error:
        raise UsageError(str(error)) from None
    existing = [p for out in outputs for p in (out.alpha, out.cutout) if p is not None and p.exists()]
    if existing and not args.overwrite:
        raise UsageError(
            f"{len(existing)} output(s) already exist, e.g. {str(existing[0])!r}; pass --overwrite to replace"
        )
    device, dtype = resolve_device_and_dtype(args.device, args.dtype)
    pipe = load_pipeline(
        args.model, device, dtype, args.trust_remote_code, args.allow_pickle, vae=args.vae, fast=args.fast
    )

    if info.has_audio:
        print(
            "diffusers-matte video: note: the input's audio is not copied; the outputs are video only", file=sys.stderr
        )
    result = matte_video(
        pipe,
        args.input,
        prompts,
        args.output_dir,
        cutout=args.cutout or args.png,
        png=args.png,
        temporal_smoothing=args.temporal_smoothing,
        processing_resolution=args.processing_resolution,
        progress=not args.no_progress,
    )
    print(
        f"matted {result.num_frames} frame(s) at {float(info.fps):g} frames/s of video, "
        f"{result.frames_per_second:.1f} frames/s of matting; wrote {len(outputs)} alpha video(s)"
        + (" and cut-out(s)" if args.cutout or args.png else "")
        + f" to {args.output_dir}",
        file=sys.stderr,
    )
    return 0
