# Copyright 2026 The diffusers-matte authors. Licensed under the Apache License, Version 2.0.
"""How much grounding a model has learned, on the synthetic test split.

For every instance and each of its expressions, the mean prediction over three sets of pixels of the image: the
referred instance (alpha > 0), the image's other instances, and the background. A model that ignores the text
predicts the same on the referred and the other instances; one that grounds predicts high on the first and low on
the second. SAD alone cannot tell "found nothing" from "found the wrong object".

Predictions probed: the teacher's probabilities of "not background" and of "foreground" (its region head, eq. 2),
and a pipeline's coarse alpha (the student, eq. 7) and final alpha (the matting decoder). Each is also scored as if
it were the alpha matte (SAD against the referred instance's alpha, / 1000 as the evaluation): the teacher's
P(foreground) read that way bounds what distilling it can give.
"""

from collections.abc import Callable, Iterable

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

PARTS = ("referred", "others", "background")
TEACHER_OUTPUTS = ("P(not background)", "P(foreground)")


def _images(rows) -> Iterable[tuple[object, list[np.ndarray], list[list[str]]]]:
    """(image, instance alphas in [0, 1], per instance its expressions) for every test image."""
    by_image: dict[str, list[int]] = {}
    for index, image_id in enumerate(rows["image_id"]):
        by_image.setdefault(image_id, []).append(index)
    for indices in by_image.values():
        instances = [rows[i] for i in indices]
        alphas = [np.asarray(r["alpha"], dtype=np.float32) / 255.0 for r in instances]
        yield instances[0]["image"], alphas, [r["texts"] for r in instances]


def _parts(alphas: list[np.ndarray], k: int) -> tuple[np.ndarray, ...]:
    referred = alphas[k] > 0
    others = np.zeros_like(referred)
    for j, alpha in enumerate(alphas):
        if j != k:
            others |= alpha > 0
    others &= ~referred
    return referred, others, ~referred & ~others


def probe(
    rows, predict: Callable[[object, list[str]], dict[str, list[np.ndarray]]], by_expression: bool = False
) -> dict:
    """Mean of each output of `predict(image, prompts)` (`{output: one native-size map per prompt}`, so a model
    runs once for all its outputs) over the referred instance, the other instances and the background, and its SAD
    (/ 1000) against the referred alpha, averaged over every (instance, expression) pair.
    Returns `{output: {part: mean}}`, parts `PARTS` and `"sad"`; with `by_expression`,
    `{output: {expression index: {part: mean}}}` (the index of the text in each row's `texts`: its kind, for the
    synthetic set's keyword / basic / absolute / relative)."""
    sums: dict = {}
    for image, alphas, texts in _images(rows):
        for t in range(len(texts[0])):
            outputs = predict(image, [expressions[t] for expressions in texts])
            for output, maps in outputs.items():
                keyed = sums.setdefault(output, {})
                values = keyed.setdefault(t if by_expression else None, {part: [] for part in (*PARTS, "sad")})
                for k, prediction in enumerate(maps):
                    for part, mask in zip(PARTS, _parts(alphas, k)):
                        if mask.any():
                            values[part].append(float(prediction[mask].mean()))
                    values["sad"].append(float(np.abs(prediction - alphas[k]).sum()) / 1000)
    means = {
        output: {key: {part: float(np.mean(v)) for part, v in values.items()} for key, values in keyed.items()}
        for output, keyed in sums.items()
    }
    return means if by_expression else {output: keyed[None] for output, keyed in means.items()}


def first_images(rows, num_images: int):
    """The rows of the first `num_images` images of `rows` (every instance of each)."""
    keep = set(list(dict.fromkeys(rows["image_id"]))[:num_images])
    return rows.select([index for index, image_id in enumerate(rows["image_id"]) if image_id in keep])


def by_kind(means: dict) -> dict:
    """`probe(..., by_expression=True)`'s means for one output, keyed by the synthetic set's expression kinds
    (`TEXT_TYPES`, in the order of each row's `texts`), plus "all": each mean averaged over the kinds."""
    from diffusers_matte.data.synthetic import TEXT_TYPES

    named = {TEXT_TYPES[t]: means[t] for t in sorted(means)}
    named["all"] = {key: float(np.mean([m[key] for m in means.values()])) for key in next(iter(means.values()))}
    return named


def _native(maps: torch.Tensor, size: tuple[int, int]) -> list[np.ndarray]:
    """(N, 1, h, w) maps bilinearly resized to the image's (H, W)."""
    maps = F.interpolate(maps.float(), size=size, mode="bilinear", align_corners=False)
    return list(maps[:, 0].cpu().numpy())


def teacher_predictor(base, teacher, resolution: int, outputs: tuple[str, ...] = TEACHER_OUTPUTS) -> Callable:
    """The teacher's region probabilities, with the base model's VAE and text encoder.

    Args:
        outputs: some of `TEACHER_OUTPUTS`: 1 - softmax(background), softmax(foreground).
    """
    unknown = [output for output in outputs if output not in TEACHER_OUTPUTS]
    if unknown:
        raise ValueError(f"`outputs` must be among {TEACHER_OUTPUTS}, got {unknown}.")
    from diffusers import AutoencoderKL
    from transformers import CLIPTextModel, CLIPTokenizer

    from diffusers_matte.data.targets import REGION_BACKGROUND, REGION_FOREGROUND
    from diffusers_matte.models.text_adapter import TextAdapter
    from diffusers_matte.models.unet_matte import MatteUNet2DConditionModel
    from diffusers_matte.pipelines.soft_grounding.pipeline_soft_grounding import (
        encode_latents,
        tokenize,
    )

    vae = AutoencoderKL.from_pretrained(base, subfolder="vae").eval()
    text_encoder = CLIPTextModel.from_pretrained(base, subfolder="text_encoder").eval()
    tokenizer = CLIPTokenizer.from_pretrained(base, subfolder="tokenizer")
    unet = MatteUNet2DConditionModel.from_pretrained(teacher, subfolder="unet").eval()
    adapter = TextAdapter.from_pretrained(teacher, subfolder="text_adapter").eval()

    @torch.no_grad()
    def predict(image, prompts: list[str]) -> dict[str, list[np.ndarray]]:
        image = image.convert("RGB")
        pixels = np.asarray(image.resize((resolution, resolution), resample=Image.BICUBIC))
        pixels = torch.from_numpy(pixels.copy()).permute(2, 0, 1)[None].float() / 127.5 - 1
        latents = encode_latents(vae, pixels, vae.device)
        ids, _ = tokenize(tokenizer, text_encoder, prompts)
        text = adapter(text_encoder(ids)[0])
        logits = unet(latents.expand(len(prompts), -1, -1, -1), unet.config.prediction_timestep, text).sample
        probs = logits.softmax(1)
        maps = {
            "P(not background)": 1 - probs[:, REGION_BACKGROUND : REGION_BACKGROUND + 1],
            "P(foreground)": probs[:, REGION_FOREGROUND : REGION_FOREGROUND + 1],
        }
        return {output: _native(maps[output], image.size[::-1]) for output in outputs}

    return predict


def pipeline_predictor(pipe) -> Callable:
    """A pipeline's coarse alpha (student) and final alpha (decoder), each at the image's size, from one call."""

    def predict(image, prompts: list[str]) -> dict[str, list[np.ndarray]]:
        out = pipe(image, prompt=prompts, output_type="pt")
        size = image.size[::-1]
        return {
            "coarse alpha": _native(torch.stack(list(out.coarse_alpha)), size),
            "alpha": _native(torch.stack(list(out.alpha)), size),
        }

    return predict
