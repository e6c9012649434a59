# Copyright 2026 The diffusers-matte authors. Licensed under the Apache License, Version 2.0.
"""Validation during training, as diffusers' examples log it: the stage's current prediction for the
`--validation_image` / `--validation_prompt` pairs, saved under the output folder and sent to the trackers; and,
for the stages whose output is a pipeline, the four matting metrics on a held-out split (`--eval_protocol`),
scored by the evaluation harness."""

import argparse
import contextlib
import shutil
from collections.abc import Callable, Iterator
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


EVALUATION_DIR = "evaluation"


def load_validation_pixels(path: str, resolution: int) -> tuple[torch.Tensor, "PIL.Image.Image"]:  # noqa: F821
    """A validation image preprocessed as the training images are (`prepare_pixels`, square), and its RGB view."""
    from ..pipelines.soft_grounding.image_processor import open_image

    pixels = square_pixels(open_image(path), resolution)
    return pixels, _to_pil((pixels[0] + 1.0) / 2.0)


def square_pixels(image: "PIL.Image.Image | np.ndarray", resolution: int) -> torch.Tensor:  # noqa: F821
    """`(1, 3, resolution, resolution)` in [-1, 1]: an image (PIL or an RGB array) resized to the square training
    size, as every training stage and the paper's 512x512 evaluation see it."""
    from ..pipelines.soft_grounding.image_processor import load_image, prepare_pixels

    return prepare_pixels(load_image(image), resolution, keep_aspect_ratio=False)[0]


def _to_pil(image: torch.Tensor):
    import PIL.Image

    array = image.detach().float().cpu().clamp(0, 1).numpy()
    array = np.round(array.transpose(1, 2, 0) * 255).astype(np.uint8) if array.ndim == 3 else array
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    return PIL.Image.fromarray(array).convert("RGB")


@contextlib.contextmanager
def predicting(models: dict[str, nn.Module], emas: dict) -> Iterator[None]:
    """The models as they predict during training: the averages with `--use_ema`, in eval mode, without gradients
    and without touching the random state (the run continues exactly as without validation); all restored after."""
    modes = {name: model.training for name, model in models.items()}
    for name, ema in emas.items():
        ema.store(trained_parameters(models[name]))
        ema.copy_to(trained_parameters(models[name]))
    rng_state = torch.get_rng_state()
    try:
        for model in models.values():
            model.eval()
        with torch.no_grad():
            yield
    finally:
        torch.set_rng_state(rng_state)
        for name, model in models.items():
            model.train(modes[name])
        for name, ema in emas.items():
            ema.restore(trained_parameters(models[name]))


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

    rows = []
    with predicting(models, emas):
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


def alpha_predictor(validate_fn: Callable, models: dict[str, nn.Module], resolution: int) -> Callable:
    """The stage's validation prediction as the evaluation harness's `predict(images, prompts) -> alphas`: each
    RGB image resized to the `resolution` square (`square_pixels`), its `"alpha"` brought back to the image's
    size. `validate_fn` must return an `"alpha"` (the matting decoder and refiner stages do)."""
    from ..pipelines.soft_grounding.image_processor import resize

    def predict(images: list[np.ndarray], prompts: list[str]) -> list[torch.Tensor]:
        alphas = []
        for image, prompt in zip(images, prompts):
            predictions = validate_fn(models, square_pixels(image, resolution), prompt)
            if "alpha" not in predictions:
                raise ValueError(f"--eval_protocol scores an alpha; this stage predicts {sorted(predictions)}.")
            alpha = torch.from_numpy(np.asarray(predictions["alpha"].convert("L"), np.float32) / 255.0)
            alphas.append(resize(alpha[None, None], tuple(image.shape[:2]))[0, 0].clamp(0, 1))
        return alphas

    return predict


def load_eval_dataset(args: argparse.Namespace, accelerator: Accelerator):
    """The held-out split of `--eval_protocol` (`evaluation.load_protocol_dataset`), read once per run; the
    generated synthetic split (no `--eval_data_dir`) is the test split of `--seed` at `--synthetic_image_size`,
    which shares no image with the training split."""
    if getattr(args, "_eval_dataset", None) is None:
        from ..evaluation import load_protocol_dataset

        with accelerator.main_process_first():  # a generated or converted set is cached once
            args._eval_dataset = load_protocol_dataset(
                args.eval_protocol, args.eval_data_dir, args.eval_captions_file, args.dataset_cache_dir,
                args.synthetic_num_test, args.seed, args.synthetic_image_size,
            )  # fmt: skip
    return args._eval_dataset


def log_evaluation(
    args: argparse.Namespace,
    accelerator: Accelerator,
    models: dict[str, nn.Module],
    emas: dict,
    validate_fn: Callable,
    step: int,
    final: bool = False,
) -> Optional[dict]:
    """Score the stage's current prediction (`alpha_predictor`, the averages with `--use_ema`) on the held-out split
    of `--eval_protocol` with the evaluation harness (`evaluation.evaluate`, split among the processes: call it
    on every process); its files (`run.json`, `samples.csv`, `metrics.json`, `results.md`) go to
    `<output_dir>/evaluation/step-<step>/` and the means of SAD, MSE, GRAD and CONN to the trackers as
    `eval/<metric>`. Returns those means (and, at the end, keeps them for the model card in
    `args.evaluation_summary`); None without `--eval_protocol`.

    The images are fed as in training (resized to the `--resolution` square) and the 8-bit alpha of the stage's
    validation is scored, so the numbers follow the run's progress; the saved pipeline's numbers are those of
    `training/evaluate.py` on the output folder."""
    if not getattr(args, "eval_protocol", None):
        return None
    from ..evaluation import evaluate
    from ..metrics import METRIC_NAMES

    dataset = load_eval_dataset(args, accelerator)
    folder = Path(args.output_dir) / EVALUATION_DIR / f"step-{step}"
    if accelerator.is_main_process and folder.exists():  # a resumed or restarted run scores this step anew
        shutil.rmtree(folder)
    accelerator.wait_for_everyone()
    data = args.eval_data_dir or f"generated: num_test={args.synthetic_num_test}, seed={args.seed}"
    run_info = {"model": f"{args.output_dir} at step {step}", "stage": args.stage, "data": str(data),
                "training_resolution": args.resolution, "ema": bool(getattr(args, "use_ema", False))}  # fmt: skip
    with predicting(models, emas):
        result = evaluate(
            alpha_predictor(validate_fn, models, args.resolution), dataset, args.eval_protocol, folder,
            run_info=run_info, max_samples=args.eval_max_samples, device=str(accelerator.device), warmup=0,
            progress=False,
        )  # fmt: skip
    means = {name: result.summary["mean"][name] for name in METRIC_NAMES}
    accelerator.log({f"eval/{name}": value for name, value in means.items()}, step=step)
    if final:
        args.evaluation_summary = {
            "protocol": args.eval_protocol,
            "step": step,
            "samples": result.summary["num_samples"],
            **means,
        }
    return means


def log_step(
    args: argparse.Namespace,
    accelerator: Accelerator,
    models: dict[str, nn.Module],
    emas: dict,
    validate_fn: Callable,
    step: int,
    final: bool = False,
) -> None:
    """What the loop reports after an optimisation step, on every process: the validation images every
    `--validation_steps` (`log_validation`) and the metrics every `--eval_steps` (`log_evaluation`), both at the
    end of the run (`final`)."""
    if final or step % args.validation_steps == 0:
        log_validation(args, accelerator, models, emas, validate_fn, step, final=final)
    if getattr(args, "eval_protocol", None) and (final or step % args.eval_steps == 0):
        log_evaluation(args, accelerator, models, emas, validate_fn, step, final=final)
