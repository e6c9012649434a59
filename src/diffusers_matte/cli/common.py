# Copyright 2026 The diffusers-matte authors. Licensed under the Apache License, Version 2.0.
"""What the subcommands share: the error they raise for bad input, reading images, loading the pipeline.

Heavy libraries (torch, the pipeline) are imported inside the functions, so that `diffusers-matte --help` is fast.
"""

import argparse
import glob
import os
from pathlib import Path

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
# The demonstration checkpoint shipped inside the package (a pipeline folder written by `save_pretrained`).
DEMO_MODEL_DIR = Path(__file__).resolve().parents[1] / "assets" / "demo_model"
EXIT_USAGE = 2


class UsageError(Exception):
    """Bad input from the user: reported as one line, exit code 2."""


class Parser(argparse.ArgumentParser):
    """argparse, but its errors are one line (no usage block) and exit with code 2."""

    def error(self, message):
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


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

    from ..pipelines.soft_grounding.image_processor import load_image

    try:
        with PIL.Image.open(path) as image:
            image.load()
            return load_image(image)
    except (OSError, ValueError, PIL.Image.DecompressionBombError) as error:
        reason = str(error).split(". Expected")[0]
        raise UsageError(f"cannot read image {str(path)!r}: {reason}") from None


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
    from ..pipelines import SoftGroundingMattingPipeline

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
