# Copyright 2026 The diffusers-matte authors. Licensed under the Apache License, Version 2.0.
"""Validation images during training, as diffusers' examples log them: the stage's current prediction for the
`--validation_image` / `--validation_prompt` pairs, saved under the output folder and sent to the trackers."""

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from accelerate import Accelerator
from torch import nn

from .ema import trained_parameters
from .options import validation_pairs

VALIDATION_DIR = "validation"


VALIDATION_GRID = "validation_grid.png"


def load_validation_pixels(path: str, resolution: int) -> tuple[torch.Tensor, "PIL.Image.Image"]:  # noqa: F821
    """A validation image preprocessed as the training images are (`prepare_pixels`, square), and its RGB view."""
    from ..pipelines.soft_grounding.image_processor import load_image, open_image, prepare_pixels

    image = load_image(open_image(path))
    pixels = prepare_pixels(image, resolution, keep_aspect_ratio=False)[0]
    return pixels, _to_pil((pixels[0] + 1.0) / 2.0)


def _to_pil(image: torch.Tensor):
    import PIL.Image

    array = image.detach().float().cpu().clamp(0, 1).numpy()
    array = np.round(array.transpose(1, 2, 0) * 255).astype(np.uint8) if array.ndim == 3 else array
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    return PIL.Image.fromarray(array).convert("RGB")


def log_validation(
    args: argparse.Namespace,
    accelerator: Accelerator,
    models: dict[str, nn.Module],
    emas: dict,
    validate_fn: Callable,
    step: int,
    final: bool = False,
) -> Optional[Path]:
    """Predict every validation pair with the models as they are (the averages, with `--use_ema`), in eval mode,
    without touching the random state; save the images under `<output_dir>/validation/step-<step>/`, log them to
    the trackers (TensorBoard, wandb) and, at the end, write the grid of the model card. Main process only."""
    pairs = validation_pairs(args)
    if not pairs or not accelerator.is_main_process:
        return None
    import PIL.Image

    modes = {name: model.training for name, model in models.items()}
    for name, ema in emas.items():
        ema.store(trained_parameters(models[name]))
        ema.copy_to(trained_parameters(models[name]))
    rng_state = torch.get_rng_state()
    rows = []
    try:
        for model in models.values():
            model.eval()
        with torch.no_grad():
            for image_path, prompt in pairs:
                pixels, shown = load_validation_pixels(image_path, args.resolution)
                predictions = validate_fn(models, pixels, prompt)
                size = shown.size
                # maps of classes (RGB) keep their colours, alphas (L) are interpolated
                shown_predictions = [
                    img.resize(size, PIL.Image.NEAREST if img.mode == "RGB" else PIL.Image.BILINEAR).convert("RGB")
                    for img in predictions.values()
                ]
                rows.append((prompt, [shown, *shown_predictions]))
                kinds = list(predictions)
    finally:
        torch.set_rng_state(rng_state)
        for name, model in models.items():
            model.train(modes[name])
        for name, ema in emas.items():
            ema.restore(trained_parameters(models[name]))
    folder = Path(args.output_dir) / VALIDATION_DIR / f"step-{step}"
    folder.mkdir(parents=True, exist_ok=True)
    for i, (_, images) in enumerate(rows):
        for kind, image in zip(["image", *kinds], images):
            image.save(folder / f"{i}-{kind}.png")
    for tracker in accelerator.trackers:
        if tracker.name == "tensorboard":
            for k, kind in enumerate(["image", *kinds]):
                stacked = np.stack([np.asarray(images[k]) for _, images in rows])
                tracker.writer.add_images(f"validation/{kind}", stacked, step, dataformats="NHWC")
            tracker.writer.flush()
        elif tracker.name == "wandb":
            import wandb

            tracker.log(
                {
                    f"validation/{kind}": [wandb.Image(images[k], caption=prompt) for prompt, images in rows]
                    for k, kind in enumerate(["image", *kinds])
                },
                step=step,
            )
    width, height = rows[0][1][0].size
    grid = PIL.Image.new("RGB", (width * len(rows[0][1]), height * len(rows)))
    for r, (_, images) in enumerate(rows):
        for c, image in enumerate(images):
            grid.paste(image, (c * width, r * height))
    grid.save(folder / "grid.png")
    if final:
        grid.save(Path(args.output_dir) / VALIDATION_GRID)
        args.validation_summary = {"columns": ["image", *kinds], "prompts": [prompt for prompt, _ in rows]}
    return folder
