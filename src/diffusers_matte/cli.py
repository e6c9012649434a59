# Copyright 2026 The diffusers-matte authors. Licensed under the Apache License, Version 2.0.
"""The `diffusers-matte` command.

    diffusers-matte predict photos/ "shots/*.jpg" --prompt "the dog" --prompt "the glass" --cutout

Bad input (a missing or unreadable image, no prompt, an output that would be overwritten, ...) ends the command
with exit code 2 and one line on stderr, never a traceback.

Adding a subcommand takes one function decorated with `@subcommand`: it receives the subparsers object, adds its
parser and sets `run=<function(args) -> int>` as a default; raise `UsageError` for bad input.
"""

import argparse
import glob
import os
import re
import sys
from pathlib import Path

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
# The demonstration checkpoint shipped inside the package (a pipeline folder written by `save_pretrained`).
DEMO_MODEL_DIR = Path(__file__).parent / "assets" / "demo_model"
EXIT_USAGE = 2

_SUBCOMMANDS = []


class UsageError(Exception):
    """Bad input from the user: reported as one line, exit code 2."""


class _Parser(argparse.ArgumentParser):
    """argparse, but its errors are one line (no usage block) and exit with code 2."""

    def error(self, message):
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def subcommand(register):
    """Register a function that adds one subcommand's parser (see the module docstring)."""
    _SUBCOMMANDS.append(register)
    return register


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="diffusers-matte",
        description="Text-grounded alpha matting with diffusion models.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, parser_class=_Parser, metavar="COMMAND")
    for register in _SUBCOMMANDS:
        register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
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


# predict ---------------------------------------------------------------------------------------------------------


@subcommand
def _register_predict(subparsers) -> None:
    parser = subparsers.add_parser(
        "predict",
        help="write the alpha matte (or an RGBA cut-out) of what each prompt names in each image",
        description="Write one alpha PNG (or RGBA cut-out) per image and prompt, named "
        "<image stem>_<prompt>_alpha.png (or _cutout.png).",
    )
    parser.add_argument(
        "inputs",
        nargs="+",
        metavar="INPUT",
        help="image files, folders of images, or globs",
    )
    parser.add_argument(
        "--prompt",
        action="append",
        required=True,
        help="what to matte; repeat for several mattes per image",
    )
    parser.add_argument(
        "--model",
        default=None,
        help="pipeline folder or Hub id (default: the demonstration checkpoint)",
    )
    parser.add_argument(
        "--output-dir",
        default="mattes",
        help="where to write the PNGs (default: ./mattes)",
    )
    parser.add_argument(
        "--cutout",
        action="store_true",
        help="write RGBA cut-outs with estimated foreground colours",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace existing output files")
    parser.add_argument(
        "--device",
        default=None,
        help="torch device (default: cuda, then mps, then cpu)",
    )
    parser.add_argument(
        "--dtype",
        default=None,
        choices=("float32", "float16", "bfloat16"),
        help="model precision (default: float16 on cuda, float32 elsewhere)",
    )
    parser.add_argument(
        "--processing-resolution",
        type=int,
        default=None,
        help="longest edge the models see",
    )
    parser.add_argument("--batch-size", type=int, default=1, help="prompts of one image run together")
    parser.set_defaults(run=run_predict)


def expand_inputs(inputs: list[str]) -> list[Path]:
    """Files, folders (their images, sorted) and globs -> image paths, in order, without repeats."""
    paths = []
    for item in inputs:
        if glob.has_magic(item):
            matches = sorted(Path(p) for p in glob.glob(item, recursive=True))
            matches = [p for p in matches if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS]
            if not matches:
                raise UsageError(f"no image matches {item!r}")
            paths.extend(matches)
        elif os.path.isdir(item):
            found = sorted(p for p in Path(item).iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
            if not found:
                raise UsageError(f"no image files ({', '.join(IMAGE_EXTENSIONS)}) in folder {item!r}")
            paths.extend(found)
        elif os.path.isfile(item):
            paths.append(Path(item))
        else:
            raise UsageError(f"no such file or folder: {item!r}")
    return list(dict.fromkeys(paths))


def read_image(path: Path):
    """Open and convert one image; any failure is a `UsageError` naming the file."""
    import PIL.Image

    from .pipelines.soft_grounding.image_processor import load_image

    try:
        with PIL.Image.open(path) as image:
            image.load()
            return load_image(image)
    except (OSError, ValueError, PIL.Image.DecompressionBombError) as error:
        reason = str(error).split(". Expected")[0]
        raise UsageError(f"cannot read image {str(path)!r}: {reason}") from None


def slugify(text: str, max_length: int = 40) -> str:
    """A file-name-safe version of a prompt."""
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:max_length].strip("-")
    return slug or "prompt"


def output_paths(images: list[Path], prompts: list[str], output_dir: Path, cutout: bool) -> list[list[Path]]:
    """`<output_dir>/<stem>_<prompt slug>_{alpha,cutout}.png` per image and prompt; refuses collisions."""
    kind = "cutout" if cutout else "alpha"
    slugs = [slugify(p) for p in prompts]
    if len(set(slugs)) < len(slugs):
        raise UsageError(f"two prompts give the same file name ({', '.join(slugs)}); make them differ in letters")
    targets, owners = [], {}
    for image in images:
        row = [output_dir / f"{image.stem}_{slug}_{kind}.png" for slug in slugs]
        if row[0] in owners:
            raise UsageError(f"{str(owners[row[0]])!r} and {str(image)!r} would write the same outputs; rename one")
        owners[row[0]] = image
        targets.append(row)
    return targets


def resolve_device_and_dtype(device: str | None, dtype: str | None):
    import torch

    if device is None:
        device = "cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() else "cpu"
    try:
        device = torch.device(device)
    except RuntimeError as error:
        raise UsageError(f"invalid --device {device!r}: {error}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda was asked for, but torch sees no CUDA device")
    if dtype is None:
        dtype = "float16" if device.type == "cuda" else "float32"
    return device, getattr(torch, dtype)


def load_pipeline(model: str | None, device, dtype):
    """Load the pipeline from `model`, or from the demonstration checkpoint shipped in the package."""
    from .pipelines import SoftGroundingMattingPipeline

    if model is None:
        if not (DEMO_MODEL_DIR / "model_index.json").is_file():
            raise UsageError(
                f"no --model given and this installation has no demonstration checkpoint (looked in "
                f"{DEMO_MODEL_DIR}); pass --model with a pipeline folder or a Hub id"
            )
        model = str(DEMO_MODEL_DIR)
    try:
        pipe = SoftGroundingMattingPipeline.from_pretrained(model, dtype=dtype)
    except Exception as error:  # any loading failure is reported as one line
        message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise UsageError(f"cannot load the model {model!r}: {message}") from None
    pipe.set_progress_bar_config(disable=True)
    return pipe.to(device)


def run_predict(args) -> int:
    prompts = [p.strip() for p in args.prompt]
    if any(not p for p in prompts):
        raise UsageError("--prompt must not be empty; describe the object to matte")
    if args.batch_size < 1:
        raise UsageError(f"--batch-size must be at least 1, got {args.batch_size}")
    if args.processing_resolution is not None and args.processing_resolution < 0:
        raise UsageError(f"--processing-resolution must be >= 0, got {args.processing_resolution}")
    paths = expand_inputs(args.inputs)
    for path in paths:  # refuse unreadable images before any model work
        read_image(path)
    output_dir = Path(args.output_dir)
    targets = output_paths(paths, prompts, output_dir, args.cutout)
    existing = [t for row in targets for t in row if t.exists()]
    if existing and not args.overwrite:
        raise UsageError(
            f"{len(existing)} output file(s) already exist, e.g. {str(existing[0])!r}; pass --overwrite to replace"
        )
    device, dtype = resolve_device_and_dtype(args.device, args.dtype)
    pipe = load_pipeline(args.model, device, dtype)

    from tqdm.auto import tqdm

    from .pipelines.soft_grounding.image_processor import alpha_to_pil, cutout

    output_dir.mkdir(parents=True, exist_ok=True)
    for path, row in zip(tqdm(paths, desc="matting", unit="image"), targets):
        image = read_image(path)
        alphas = pipe(
            image,
            prompts,
            processing_resolution=args.processing_resolution,
            batch_size=args.batch_size,
            output_type="pt",
        ).alpha
        for alpha, target in zip(alphas, row):
            result = cutout(image, alpha[None]) if args.cutout else alpha_to_pil(alpha)
            result.save(target)
    print(f"wrote {len(paths) * len(prompts)} file(s) to {output_dir}", file=sys.stderr)
    return 0


@subcommand
def _register_evaluate(subparsers) -> None:
    from .evaluation import add_evaluate_arguments, run_evaluate

    parser = subparsers.add_parser(
        "evaluate",
        help="score a checkpoint on an evaluation set (SAD, MSE, GRAD, CONN, time)",
    )
    add_evaluate_arguments(parser).set_defaults(run=run_evaluate)


if __name__ == "__main__":
    sys.exit(main())
