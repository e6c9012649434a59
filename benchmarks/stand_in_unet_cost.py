#!/usr/bin/env python
# Copyright 2026 The diffusers-matte authors. Licensed under the Apache License, Version 2.0.
"""What one training step of the replication's stand-in UNet costs on this CPU, against cheaper UNets.

Grounding on the synthetic set grows with the pairs a teacher sees (`grounding_learnability.md`), and the 90-minute
ablation fixes the time; so a cheaper stand-in buys pairs. This times forward and backward of
`diffusers.UNet2DConditionModel` at the stage-1 teacher's shapes (batch 32, the 16x16 latent grid of a 64 px image,
32 text tokens of width 64), interleaving the configurations over `--rounds` rounds, and reports each one's median
and its ratio to the stand-in's. Stage 2 prunes the student of variants (b) to (d) from it with BK-SDM, which
needs Stable Diffusion's block layout, so the table gives the size of the student each one yields.

    python benchmarks/stand_in_unet_cost.py
"""

import argparse
import statistics
import time
from pathlib import Path

import torch
from diffusers import UNet2DConditionModel

from diffusers_matte.testing import get_dummy_unet_init_dict

BENCHMARKS = Path(__file__).resolve().parent
RESULTS = BENCHMARKS / "results" / "stand_in_unet_cost.md"
TOKENS = 32  # the replication's tokenizer pads to its model_max_length, 32

# name -> overrides of the stand-in (`synthetic_base_model.UNET`)
CANDIDATES = {
    "the stand-in: (32, 64, 96, 96), 2 layers per block": {},
    "narrower: (16, 32, 48, 48), 2 layers per block": dict(block_out_channels=(16, 32, 48, 48)),
    "one layer per block: (32, 64, 96, 96)": dict(layers_per_block=1),
    "three levels, no attention at 16x16, 1 layer per block: (32, 64, 96)": dict(
        block_out_channels=(32, 64, 96),
        layers_per_block=1,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
    ),
}


def build(overrides: dict) -> UNet2DConditionModel:
    from synthetic_base_model import UNET

    return UNet2DConditionModel(**get_dummy_unet_init_dict(**{**UNET, **overrides}))


def student_size(teacher: UNet2DConditionModel) -> str:
    """Parameters of the BK-SDM-tiny student that stage 2 prunes from this UNet, or why it cannot be built."""
    from diffusers_matte.models.unet_matte import MatteUNet2DConditionModel

    try:
        student = MatteUNet2DConditionModel.from_teacher(teacher, variant="tiny")
    except (ValueError, KeyError, RuntimeError) as error:
        return f"cannot be pruned: {str(error).split('; got')[0]}"
    return f"{sum(p.numel() for p in student.parameters()) / 1e6:.2f}"


def training_step(unet: UNet2DConditionModel, batch_size: int) -> float:
    latents = torch.randn(batch_size, unet.config.in_channels, 16, 16)
    states = torch.randn(batch_size, TOKENS, unet.config.cross_attention_dim)
    timesteps = torch.full((batch_size,), 500)
    start = time.perf_counter()
    unet(latents, timesteps, states).sample.square().mean().backward()
    unet.zero_grad(set_to_none=True)
    return time.perf_counter() - start


def measure(batch_size: int, rounds: int) -> dict:
    torch.manual_seed(0)
    models = {name: build(overrides) for name, overrides in CANDIDATES.items()}
    for unet in models.values():  # warm-up, untimed
        training_step(unet, batch_size)
    seconds = {name: [] for name in models}
    for _ in range(rounds):
        for name, unet in models.items():
            seconds[name].append(training_step(unet, batch_size))
    return {
        name: {
            "ms": 1000 * statistics.median(times),
            "params": sum(p.numel() for p in models[name].parameters()),
            "student": student_size(models[name]),
        }
        for name, times in seconds.items()
    }


def write_results(path: Path, command: str, batch_size: int, rounds: int, rows: dict) -> None:
    from benchmark_unet import machine_description

    reference = next(iter(rows.values()))["ms"]
    lines = [
        "# Training-step cost of the synthetic stand-in UNet and cheaper ones",
        "",
        f"Command: `{command}`",
        "",
        f"Forward and backward of `UNet2DConditionModel`, batch {batch_size}, 16x16 latents, {TOKENS} tokens; median "
        f"of {rounds} interleaved rounds after one untimed step. Run on {machine_description(torch.get_num_threads())}.",
        "",
        "| UNet | ms per step | x the stand-in | parameters (M) | its BK-SDM-tiny student (M parameters) |",
        "|---|---|---|---|---|",
    ]
    for name, row in rows.items():
        lines.append(
            f"| {name} | {row['ms']:.0f} | {row['ms'] / reference:.2f} | {row['params'] / 1e6:.2f} | "
            f"{row['student']} |"
        )
    path.write_text("\n".join(lines) + "\n")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    rows = measure(args.batch_size, args.rounds)
    from benchmark_unet import command_line

    command = command_line(Path(__file__).name, parser, args, skip=("output",))
    write_results(args.output, command, args.batch_size, args.rounds, rows)
    print(args.output.read_text())


if __name__ == "__main__":
    main()
