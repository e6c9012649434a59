# Copyright 2026 The diffusers-matte authors. Licensed under the Apache License, Version 2.0.
"""`diffusers-matte demo`: the Gradio web demo of `diffusers_matte.demo`, served on this machine by default."""

import ipaddress
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


def register(subparsers) -> None:
    """Adds `diffusers-matte demo`."""
    parser = subparsers.add_parser(
        "demo",
        help="serve a web demo: upload an image, type prompts, get alpha mattes and cut-outs",
        description="Serve the Gradio web demo. It listens on 127.0.0.1 (this machine only) unless --host says "
        "otherwise; requests run one at a time; the model is loaded once. Needs `pip install "
        '"diffusers-matte[demo]"`.',
    )
    parser.add_argument(
        "--model",
        default=None,
        help="pipeline folder or Hub id (default: the built-in demonstration model)",
    )
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default: 127.0.0.1; 0.0.0.0 serves every network the machine is on)",
    )
    parser.add_argument("--port", type=int, default=7860, help="port to listen on (default: 7860)")
    parser.add_argument(
        "--share",
        action="store_true",
        help="also open a temporary public link through Gradio's share servers",
    )
    parser.add_argument(
        "--max-megapixels",
        type=float,
        default=None,
        help="larger uploads are refused with a message (default: 16)",
    )
    parser.add_argument(
        "--processing-resolution",
        type=int,
        default=None,
        help="longest edge the models see (default: the model's own)",
    )
    parser.add_argument(
        "--examples",
        default=None,
        help="gallery spec of example images and prompts (default: the repository's examples/gallery.json)",
    )
    parser.add_argument("--no-examples", action="store_true", help="show no examples")
    add_model_loading_arguments(parser)
    add_vae_arguments(parser)
    add_device_arguments(parser)
    parser.set_defaults(run=run_demo)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def run_demo(args) -> int:
    """Check the options, load the pipeline once, build the app and serve it until interrupted."""
    if not 0 < args.port < 65536:
        raise UsageError(f"--port must be between 1 and 65535, got {args.port}")
    if args.max_megapixels is not None and args.max_megapixels <= 0:
        raise UsageError(f"--max-megapixels must be positive, got {args.max_megapixels}")
    if args.processing_resolution is not None and args.processing_resolution < 0:
        raise UsageError(f"--processing-resolution must be >= 0, got {args.processing_resolution}")
    try:
        import gradio  # noqa: F401
    except ImportError:
        raise UsageError('the demo needs Gradio: pip install "diffusers-matte[demo]"') from None

    from .. import demo as demo_lib

    examples = None if args.no_examples else (args.examples or demo_lib.EXAMPLES_FILE)
    if args.examples is not None and not args.no_examples and not Path(args.examples).is_file():
        raise UsageError(f"no such examples file: {args.examples!r}")
    device, dtype = resolve_device_and_dtype(args.device, args.dtype)
    pipe = load_pipeline(
        args.model, device, dtype, args.trust_remote_code, args.allow_pickle, vae=args.vae, fast=args.fast
    )
    app = demo_lib.create_demo(
        pipe,
        examples=examples,
        max_megapixels=args.max_megapixels or demo_lib.DEFAULT_MAX_MEGAPIXELS,
        processing_resolution=args.processing_resolution,
    )
    if not _is_loopback(args.host):
        print(
            f"diffusers-matte demo: note: listening on {args.host}, so other machines can reach the demo",
            file=sys.stderr,
        )
    allowed = [str(Path(examples).resolve().parent)] if examples else []
    demo_lib.launch_demo(app, host=args.host, port=args.port, share=args.share, allowed_paths=allowed)
    return 0
