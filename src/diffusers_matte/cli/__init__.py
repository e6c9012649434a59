# Copyright 2026 The diffusers-matte authors. Licensed under the Apache License, Version 2.0.
"""The `diffusers-matte` command.

    diffusers-matte predict photos/ "shots/*.jpg" --prompt "the dog" --prompt "the glass" --cutout

Bad input (a missing or unreadable image, no prompt, an output that would be overwritten, ...) ends the command
with exit code 2 and one line on stderr, never a traceback.

Each subcommand is a module of this package named in `COMMANDS`, with a `register(subparsers)` function that adds
its parser and sets `run=<function(args) -> int>` as a default; it raises `UsageError` for bad input and imports
heavy libraries inside its functions, so that `--help` stays fast. A command that runs a model takes the shared
options (`add_device_arguments`: `--device`, `--dtype`; `add_model_loading_arguments`: `--trust-remote-code`,
`--allow-pickle`; `add_vae_arguments`: `--vae`, `--fast`) and hands them to `resolve_device_and_dtype` and
`load_pipeline`. `subcommand` registers one more from outside.
"""

import argparse
import importlib
import sys
from typing import Callable, List, Optional

from .common import (
    DEFAULT_MAX_MEGAPIXELS,
    DEMO_MODEL_DIR,
    EXIT_USAGE,
    Parser,
    UsageError,
    add_device_arguments,
    add_model_loading_arguments,
    add_vae_arguments,
    check_max_megapixels,
    check_output_dir,
    check_writable_target,
    expand_inputs,
    load_pipeline,
    read_image,
    resolve_device_and_dtype,
    write_atomically,
)

__all__ = [
    "COMMANDS",
    "DEFAULT_MAX_MEGAPIXELS",
    "DEMO_MODEL_DIR",
    "EXIT_USAGE",
    "UsageError",
    "add_device_arguments",
    "add_model_loading_arguments",
    "add_vae_arguments",
    "build_parser",
    "check_max_megapixels",
    "check_output_dir",
    "check_writable_target",
    "expand_inputs",
    "load_pipeline",
    "main",
    "read_image",
    "resolve_device_and_dtype",
    "subcommand",
    "write_atomically",
]

COMMANDS = ("predict", "evaluate", "demo", "video")
_SUBCOMMANDS: List[Callable] = []  # registered from outside the package


def subcommand(register: Callable) -> Callable:
    """Registers a function that adds one more subcommand's parser (see the module docstring)."""
    _SUBCOMMANDS.append(register)
    return register


def build_parser() -> argparse.ArgumentParser:
    """The parser of the `diffusers-matte` command, with every subcommand of `COMMANDS` and `subcommand`."""
    from .. import __version__

    parser = Parser(prog="diffusers-matte", description="Text-grounded alpha matting with diffusion models.")
    parser.add_argument("--version", action="version", version=f"diffusers-matte {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, parser_class=Parser, metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"{__name__}.{name}").register(subparsers)
    for register in _SUBCOMMANDS:
        register(subparsers)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    """Entry point of the console script; returns the exit code."""
    args = build_parser().parse_args(argv)
    try:
        return args.run(args) or 0
    except UsageError as error:
        print(f"diffusers-matte {args.command}: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"diffusers-matte {args.command}: interrupted", file=sys.stderr)
        return 130
