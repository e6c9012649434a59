#!/usr/bin/env python
# Copyright 2026 The diffusers-matte authors. Licensed under the Apache License, Version 2.0.
"""How many (image, sentence) pairs grounding takes on the synthetic set, for a model built to learn it fast.

The replication's teacher and student learn to ground slowly (`stage1_levers.md`). This script asks whether that
is the diffusion framework's doing or the benchmark's: it trains, from scratch and with direct supervision, a small
model with every shortcut a grounding model can have, and probes it as the replication's models are probed
(`grounding_probe.py`: mean prediction on the referred instance over the image's other instances, per expression
kind). The model:

- reads the sentence with a 2-layer CLIP text transformer (transformers' `CLIPTextModel`, trained here, on the
  replication's tokenizer) and takes its pooled embedding;
- sees the image through a convolutional stem down to the latent grid (1/4) with two coordinate channels, so
  position words need no learning of where things are;
- conditions every residual block on the sentence by FiLM (a scale and shift per channel), the most direct path
  from words to features;
- is trained with binary cross-entropy against the referred alpha pooled to the grid: the target itself, not a
  teacher's output.

It costs about a sixth of the teacher's UNet per sample on this CPU, so it sees several times more pairs in the same
time. If it too grounds weakly after the replication's number of pairs, the limit is what the benchmark asks of a
model that starts from nothing, which only a prior (the paper's premise) or many more samples can lift.

    python benchmarks/grounding_learnability.py --work_dir outputs/v2 --steps 16000

Two options take the model closer to the teacher: `--inputs latents` shows it the base VAE's latents instead of
the pixels (the teacher's view of the image), and `--attention` adds, after each block, self-attention over all grid
cells and cross-attention to every token of the sentence (as the UNet's transformer blocks do).

`--work_dir` is a work folder of `synthetic_ablation.py` (its `data/`, `base/tokenizer` and, for latents,
`base/vae` are read; nothing is written there). `--device cuda` keeps the data and the model on a GPU, for runs of
millions of pairs (written for a GPU session, not yet run on one).
"""

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from diffusers_matte.data.synthetic import TEXT_TYPES

BENCHMARKS = Path(__file__).resolve().parent
RESULTS = BENCHMARKS / "results" / "grounding_learnability.md"
GRID = 4  # the replication's latent grid: 1/4 of the image (VAE factor 4)


class FiLMGroundingNet(nn.Module):
    """Coordinate-aware convolutions on the 1/4 grid, each residual block scaled and shifted by the sentence."""

    def __init__(
        self,
        vocab_size: int,
        max_length: int,
        special_tokens: dict,
        channels: int = 64,
        text_width: int = 64,
        blocks: int = 4,
        attention: bool = False,
        latent_channels: int = 0,
    ):
        super().__init__()
        from transformers import CLIPTextConfig, CLIPTextModel

        config = CLIPTextConfig(
            vocab_size=vocab_size,
            hidden_size=text_width,
            intermediate_size=2 * text_width,
            num_hidden_layers=2,
            num_attention_heads=4,
            max_position_embeddings=max_length,
            **special_tokens,  # bos, eos, pad: the pooled embedding is the end token's state
        )
        self.text = CLIPTextModel(config)
        # Pixels are brought down to the 1/4 grid; VAE latents (`latent_channels` > 0) are on it already.
        stride = 1 if latent_channels else 2
        self.factor = 1 if latent_channels else GRID
        self.stem = nn.Sequential(
            nn.Conv2d((latent_channels or 3) + 2, channels, 3, stride=stride, padding=1),
            nn.GroupNorm(8, channels),
            nn.SiLU(),
            nn.Conv2d(channels, channels, 3, stride=stride, padding=1),
        )
        self.convs = nn.ModuleList(nn.Conv2d(channels + 2, channels, 3, padding=1) for _ in range(blocks))
        self.norms = nn.ModuleList(nn.GroupNorm(8, channels) for _ in range(blocks))
        self.films = nn.ModuleList(nn.Linear(text_width, 2 * channels) for _ in range(blocks))
        # Optionally after each block: self-attention over all grid cells (a whole-image receptive field, for
        # categories of large objects and relations) and cross-attention to every token of the sentence.
        self.attentions = nn.ModuleList(
            nn.TransformerDecoderLayer(channels, 4, 2 * channels, dropout=0.0, batch_first=True, norm_first=True)
            for _ in range(blocks if attention else 0)
        )
        self.tokens = nn.Linear(text_width, channels) if attention else None
        self.head = nn.Conv2d(channels, 1, 1)

    @staticmethod
    def coordinates(batch: int, size: int, device: torch.device) -> torch.Tensor:
        line = torch.linspace(-1, 1, size, device=device)
        ys, xs = torch.meshgrid(line, line, indexing="ij")
        return torch.stack([xs, ys])[None].expand(batch, -1, -1, -1)

    def forward(self, pixels: torch.Tensor, input_ids: torch.Tensor) -> torch.Tensor:
        """Logits of the referred instance on the 1/4 grid, `(B, 1, H / 4, W / 4)` for pixels `(B, 3, H, W)` or
        latents `(B, latent_channels, H / 4, W / 4)`."""
        text = self.text(input_ids)
        sentence = text.pooler_output
        coords = self.coordinates(pixels.shape[0], pixels.shape[-1], pixels.device)
        features = self.stem(torch.cat([pixels, coords], 1))
        coords = F.avg_pool2d(coords, self.factor)
        for block, (conv, norm, film) in enumerate(zip(self.convs, self.norms, self.films)):
            scale, shift = film(sentence)[..., None, None].chunk(2, dim=1)
            features = features + F.silu(norm(conv(torch.cat([features, coords], 1))) * (1 + scale) + shift)
            if self.attentions:
                features = self._attend(self.attentions[block], features, text.last_hidden_state, input_ids)
        return self.head(features)

    def _attend(self, layer: nn.Module, features: torch.Tensor, states: torch.Tensor, input_ids) -> torch.Tensor:
        batch, channels, height, width = features.shape
        cells = features.flatten(2).transpose(1, 2)
        padding = input_ids == self.text.config.pad_token_id
        padding[:, 0] = False  # the start token is never padding, so every row attends to something
        cells = layer(cells, self.tokens(states), memory_key_padding_mask=padding)
        return cells.transpose(1, 2).reshape(batch, channels, height, width)


def to_tensors(rows) -> tuple[torch.Tensor, torch.Tensor]:
    """Images in [-1, 1] `(N, 3, H, W)` and alphas in [0, 1] `(N, 1, H, W)`."""
    from synthetic_base_model import _pixels

    pixels = torch.from_numpy(np.stack([_pixels(image) for image in rows["image"]])).permute(0, 3, 1, 2)
    alphas = np.stack([np.asarray(alpha) for alpha in rows["alpha"]])
    return pixels, torch.from_numpy(alphas).float()[:, None] / 255


def vae_encoder(base: Path, device):
    """The base model's frozen VAE encoder as the teacher sees images: scaled latent means, `(B, 4, H / 4, W / 4)`."""
    from diffusers import AutoencoderKL

    vae = AutoencoderKL.from_pretrained(base, subfolder="vae").to(device).eval()

    @torch.no_grad()
    def encode(pixels: torch.Tensor) -> torch.Tensor:
        return vae.encode(pixels).latent_dist.mean * vae.config.scaling_factor

    return encode


def make_predictor(model: FiLMGroundingNet, tokenize, encode=None):
    """`grounding_probe`'s predictor: the sigmoid of the model's grid logits, bilinearly up to the image."""

    import grounding_probe
    from synthetic_base_model import _pixels

    @torch.no_grad()
    def predict(image, prompts: list[str]) -> dict[str, list[np.ndarray]]:
        pixels = torch.from_numpy(_pixels(image)).permute(2, 0, 1).to(model.head.weight.device)[None]
        inputs = encode(pixels) if encode else pixels
        logits = model(inputs.expand(len(prompts), -1, -1, -1), tokenize(prompts))
        return {"prediction": grounding_probe._native(logits.sigmoid(), image.size[::-1])}

    return predict


def probe(model: FiLMGroundingNet, tokenize, rows, encode=None) -> dict:
    """Per expression kind and overall: the probe's means and the referred / others ratio."""
    import grounding_probe

    model.eval()
    means = grounding_probe.probe(rows, make_predictor(model, tokenize, encode), by_expression=True)["prediction"]
    model.train()
    return grounding_probe.by_kind(means)


# What a ratio means: predictors that know the answer, or part of it, pooled to the grid as a model predicts it.
ORACLES = {
    "the ground truth": lambda alpha, other: alpha,
    "its binary mask (alpha > 0.5)": lambda alpha, other: (alpha > 0.5).astype(np.float32),
    "90% of it, 10% of another instance": lambda alpha, other: 0.9 * alpha + 0.1 * other,
    "80% of it, 20% of another instance": lambda alpha, other: 0.8 * alpha + 0.2 * other,
    "half of it, half of another instance": lambda alpha, other: 0.5 * alpha + 0.5 * other,
}


def oracle_calibration(rows) -> dict:
    """The probe of each of `ORACLES` on `rows`: the referred alpha (or a mix of it with the alpha of another
    instance of the image), averaged over the latent grid's cells and bilinearly up-sampled again."""
    import grounding_probe

    owner, instances = {}, {}
    for row in rows:
        key = row["image"].tobytes()
        alpha = np.asarray(row["alpha"], np.float32) / 255
        instances.setdefault(key, []).append(alpha)
        owner.update({(key, text): alpha for text in row["texts"]})

    def on_grid(alpha: np.ndarray, size) -> np.ndarray:
        pooled = F.avg_pool2d(torch.from_numpy(alpha)[None, None], GRID)
        return grounding_probe._native(pooled, size)[0]

    def predictor(mix):
        def predict(image, prompts):
            key = image.tobytes()
            alphas = [owner[(key, prompt)] for prompt in prompts]
            others = [next(b for b in instances[key] if b is not a) for a in alphas]
            return {"oracle": [on_grid(mix(a, b), a.shape) for a, b in zip(alphas, others)]}

        return predict

    return {name: grounding_probe.probe(rows, predictor(mix))["oracle"] for name, mix in ORACLES.items()}


def load_splits(args) -> tuple:
    """The work folder's train split and the first `--num_test_images` images of its test split."""
    import datasets
    import grounding_probe

    data = datasets.load_from_disk(str(args.work_dir / "data"))
    return data["train"], grounding_probe.first_images(data["test"], args.num_test_images)


def train(args, train_rows, test_rows) -> list[dict]:
    """Trains the model for `--steps`, probing it on `test_rows` every `--probe_every` steps and at the end."""
    from transformers import CLIPTokenizer

    torch.manual_seed(args.seed)
    tokenizer = CLIPTokenizer.from_pretrained(args.work_dir / "base", subfolder="tokenizer")
    max_length = args.max_length

    def tokenize(texts: list[str]) -> torch.Tensor:
        return tokenizer(texts, padding="max_length", max_length=max_length, truncation=True, return_tensors="pt")[
            "input_ids"
        ].to(args.device)

    pixels, alphas = (tensor.to(args.device) for tensor in to_tensors(train_rows))
    encode = vae_encoder(args.work_dir / "base", args.device) if args.inputs == "latents" else None
    inputs = torch.cat([encode(chunk) for chunk in pixels.split(256)]) if encode else pixels
    targets = F.avg_pool2d(alphas, GRID)  # the referred alpha on the latent grid
    texts = train_rows["texts"]
    special = {f"{name}_token_id": getattr(tokenizer, f"{name}_token_id") for name in ("bos", "eos", "pad")}
    latent_channels = inputs.shape[1] if encode else 0
    model = FiLMGroundingNet(
        len(tokenizer), max_length, special, attention=args.attention, latent_channels=latent_channels
    )
    model.to(args.device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.learning_rate)
    generator = torch.Generator().manual_seed(args.seed)
    rows, start = [], time.perf_counter()
    for step in range(1, args.steps + 1):
        index = torch.randint(0, len(texts), (args.batch_size,), generator=generator)
        kind = torch.randint(0, len(TEXT_TYPES), (args.batch_size,), generator=generator)
        ids = tokenize([texts[i][k] for i, k in zip(index.tolist(), kind.tolist())])
        loss = F.binary_cross_entropy_with_logits(model(inputs[index], ids), targets[index])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step % args.probe_every == 0 or step == args.steps:
            minutes = (time.perf_counter() - start) / 60
            row = {
                "step": step,
                "samples": step * args.batch_size,
                "minutes": minutes,
                "probe": probe(model, tokenize, test_rows, encode),
            }
            rows.append(row)
            print(json.dumps(row), flush=True)
    return rows


def write_results(path: Path, command: str, args, rows: list[dict], calibration: dict) -> None:
    from benchmark_unet import machine_description

    lines = [
        "# How many pairs grounding takes on the synthetic set (a small supervised model, from scratch)",
        "",
        f"Command: `{command}`",
        "",
        f"Data: `{args.work_dir}/data`. Batch {args.batch_size}, AdamW at {args.learning_rate:g}, "
        f"seed {args.seed}; probed on the first {args.num_test_images} test images (every instance, every expression). "
        f"Run on {machine_description(torch.get_num_threads())}. Cells: the model's "
        "mean prediction on the referred instance over its mean on the image's other instances (1.0: the sentence "
        "is ignored); last column: the prediction scored as the alpha matte (SAD / 1000).",
        "",
        "| step | pairs seen | minutes | " + " | ".join(TEXT_TYPES) + " | all | SAD as alpha |",
        "|---|---|---|" + "---|" * (len(TEXT_TYPES) + 2),
    ]
    for row in rows:
        cells = [f"{row['probe'][k]['referred'] / row['probe'][k]['others']:.2f}" for k in (*TEXT_TYPES, "all")]
        lines.append(
            f"| {row['step']} | {row['samples']} | {row['minutes']:.1f} | "
            + " | ".join(cells)
            + f" | {row['probe']['all']['sad']:.3f} |"
        )
    lines += [
        "",
        "What a ratio means, on the same test images: predictors that know the referred instance's alpha (or mix it "
        "with another instance's), averaged over the latent grid's cells and up-sampled as a model's prediction is.",
        "",
        "| oracle: the referred alpha ... | referred | others | ratio | SAD as alpha |",
        "|---|---|---|---|---|",
    ]
    for name, means in calibration.items():
        lines.append(
            f"| {name} | {means['referred']:.3f} | {means['others']:.3f} | "
            f"{means['referred'] / means['others']:.1f} | {means['sad']:.3f} |"
        )
    path.write_text("\n".join(lines) + "\n")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work_dir", type=Path, required=True)
    parser.add_argument("--steps", type=int, default=16000)
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--learning_rate", type=float, default=1e-3)
    parser.add_argument("--max_length", type=int, default=24)
    parser.add_argument("--probe_every", type=int, default=1000)
    parser.add_argument("--num_test_images", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu", help="e.g. cuda, for runs of millions of pairs")
    parser.add_argument(
        "--inputs",
        choices=["pixels", "latents"],
        default="pixels",
        help="what the model sees: the image, or its latents from the work folder's base VAE (as the teacher does)",
    )
    parser.add_argument(
        "--attention",
        action="store_true",
        help="add self-attention over the grid and cross-attention to the sentence's tokens after each block",
    )
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument(
        "--from_log",
        type=Path,
        default=None,
        help="write the results from the probe rows a run of the same arguments printed (its stdout), not training",
    )
    args = parser.parse_args(argv)
    train_rows, test_rows = load_splits(args)
    calibration = oracle_calibration(test_rows)
    if args.from_log:
        lines = args.from_log.read_text().splitlines()
        rows = [json.loads(line) for line in lines if line.startswith('{"step"')]
    else:
        rows = train(args, train_rows, test_rows)
    from benchmark_unet import command_line

    command = command_line(Path(__file__).name, parser, args, skip=("output", "from_log"))
    write_results(args.output, command, args, rows, calibration)


if __name__ == "__main__":
    main()
