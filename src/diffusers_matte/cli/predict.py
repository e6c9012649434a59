# Copyright 2026 The diffusers-matte authors. Licensed under the Apache License, Version 2.0.
"""`diffusers-matte predict`: one alpha PNG (or RGBA cut-out) per image and prompt."""

import re
import sys
from pathlib import Path

from .common import UsageError, expand_inputs, load_pipeline, read_image, resolve_device_and_dtype


def register(subparsers) -> None:
    """Adds `diffusers-matte predict`."""
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

    from ..pipelines.soft_grounding.image_processor import alpha_to_pil, cutout

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
