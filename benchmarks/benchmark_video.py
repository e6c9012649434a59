# Copyright 2026 The diffusers-matte authors. Licensed under the Apache License, Version 2.0.
"""Video matting on synthetic moving-object clips: per-frame SAD, flicker (dtSSD) and frames/s, with and without
temporal smoothing.

    python benchmarks/benchmark_video.py --output benchmarks/results/video_cpu.md

Each clip (`diffusers_matte.data.synthetic_video`: a scene of the synthetic set whose instances move over its
background, a ground-truth alpha per frame, fresh sensor noise on every frame) is written as a lossless video and
matted end to end by `diffusers_matte.video.matte_video`, as `diffusers-matte video` does: decoding, matting, the
lossless alpha video. Variants: no smoothing; the motion-gated `TemporalSmoother` (the command's
`--temporal-smoothing`); the same blend without the motion gate (a plain exponential moving average, which lags on
motion); and no smoothing with the RGBA cut-out written too. Scores are against the float alphas before 8-bit
rounding, averaged over the frames of all clips.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch

from diffusers_matte.cli.common import load_pipeline
from diffusers_matte.data.synthetic_video import make_clip, write_clip
from diffusers_matte.video import TemporalSmoother, VideoMetrics, iter_frames, matte_video

VARIANTS = ("none", "motion-gated", "plain EMA", "none + cut-out")


def _smoother(variant: str, strength: float):
    if variant == "motion-gated":
        return TemporalSmoother(strength)
    if variant == "plain EMA":
        return TemporalSmoother(strength, motion_threshold=float("inf"))
    return 0.0


def run_variant(pipe, clip_path: Path, alpha_path: Path, prompt: str, variant: str, strength: float, work: Path):
    """Matte one clip with one variant; returns its `VideoMetrics`, frames/s and CPU milliseconds per frame."""
    ground_truth = iter_frames(alpha_path, "gray")
    metrics = VideoMetrics()

    def score(index, alphas):
        metrics.update(alphas[0], next(ground_truth)[..., 0] / 255.0)

    cpu_start = time.process_time()
    result = matte_video(
        pipe,
        clip_path,
        [prompt],
        work / variant.replace(" ", "_"),
        cutout=variant.endswith("cut-out"),
        temporal_smoothing=_smoother(variant, strength),
        progress=False,
        on_frame=score,
    )
    cpu_ms = (time.process_time() - cpu_start) * 1000 / max(result.num_frames, 1)
    return metrics, result.frames_per_second, cpu_ms


def _load_average() -> float:
    return os.getloadavg()[0]


def smoothing_ms(size: int, strength: float, calls: int = 200) -> float:
    """CPU milliseconds of one `TemporalSmoother` call (one prompt) on `size` x `size` frames, median of 5 runs."""
    generator = torch.Generator().manual_seed(0)
    frames = [torch.rand(1, 3, size, size, generator=generator) for _ in range(2)]
    alpha = [torch.rand(1, 1, size, size, generator=generator)]
    smoother, runs = TemporalSmoother(strength), []
    for _ in range(5):
        start = time.process_time()
        for k in range(calls):
            smoother(frames[k % 2], alpha)
        runs.append((time.process_time() - start) * 1000 / calls)
    return float(np.median(runs))


def reading(rows) -> list[str]:
    """Per speed, each smoothing variant's relative change of SAD and of both dtSSDs against no smoothing."""
    lines = []
    for speed in dict.fromkeys(row[0] for row in rows):
        by_variant = {row[1]: row[2] for row in rows if row[0] == speed}
        base = by_variant["none"]
        changes = []
        for variant in ("motion-gated", "plain EMA"):
            summary = by_variant[variant]
            change = {k: 100 * (summary[k] / base[k] - 1) for k in ("sad", "dtssd", "dtssd_still")}
            changes.append(
                f"{variant} SAD {change['sad']:+.1f}%, dtSSD {change['dtssd']:+.1f}%, "
                f"dtSSD still {change['dtssd_still']:+.1f}%"
            )
        lines.append(f"- speed {speed:g}, against no smoothing: " + "; ".join(changes) + ".")
    return lines


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", default="benchmarks/results/video_cpu.md")
    parser.add_argument("--overwrite", action="store_true")
    parser.add_argument("--model", default=None, help="pipeline folder or Hub id (default: the demonstration one)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--speeds", type=float, nargs="+", default=[0.005, 0.02], help="frame sizes per frame")
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--fps", type=int, default=24)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--strength", type=float, default=0.6, help="smoothing strength")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    args = parser.parse_args(argv)
    output = Path(args.output)
    if output.exists() and not args.overwrite:
        parser.error(f"{output} exists; pass --overwrite to replace it")

    torch.set_num_threads(args.threads)
    pipe = load_pipeline(args.model, torch.device("cpu"), torch.float32)
    rows, prompts = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for speed in args.speeds:
            per_variant = {v: (VideoMetrics(), [], []) for v in VARIANTS}
            load_before = _load_average()
            for seed in args.seeds:
                clip = make_clip(seed, args.seconds, args.fps, args.size, speed)
                prompts[seed] = clip.prompt
                clip_path, alpha_path = work / f"clip{seed}.mkv", work / f"clip{seed}_alpha.mkv"
                write_clip(clip, clip_path, alpha_path)
                for variant in VARIANTS:
                    metrics, fps, cpu_ms = run_variant(
                        pipe, clip_path, alpha_path, clip.prompt, variant, args.strength, work
                    )
                    total, speeds, cpu = per_variant[variant]
                    for name in ("sad", "mse", "dtssd", "dtssd_still"):
                        getattr(total, name).extend(getattr(metrics, name))
                    speeds.append(fps)
                    cpu.append(cpu_ms)
                    print(f"speed {speed} seed {seed} {variant}: {metrics.summary()} {fps:.1f} frames/s", flush=True)
            load_after = _load_average()
            for variant, (total, speeds, cpu) in per_variant.items():
                summary = total.summary()
                rows.append((speed, variant, summary, np.median(speeds), np.median(cpu), load_before, load_after))

    smoothing_cost = smoothing_ms(args.size, args.strength)
    command = "python benchmarks/benchmark_video.py " + " ".join(sys.argv[1:] if argv is None else argv)
    lines = [
        "# Video matting on synthetic moving-object clips (cpu)",
        "",
        f"Command: `{command.strip()}`",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, {args.threads} torch "
        "thread(s); shared with other jobs (1-minute load average before/after each motion speed in the table).",
        "",
        f"Model: {'the demonstration checkpoint' if args.model is None else args.model} (it processes at "
        f"{pipe.config.default_processing_resolution} px). Clips: seeds {', '.join(map(str, args.seeds))} of "
        f"`diffusers_matte.data.synthetic_video.make_clip`, {args.seconds:g} s at {args.fps} frames/s, "
        f"{args.size}x{args.size}, per-frame sensor noise sigma 2/255, the named instance moving at the given "
        "speed (frame sizes per frame; the others at 30-100% of it). Prompts: "
        + "; ".join(f"seed {s}: *{p}*" for s, p in prompts.items())
        + f". Smoothing strength {args.strength}.",
        "",
        "SAD: per-frame DIM SAD (in thousands), mean over all frames; MSE likewise. dtSSD: "
        "`sqrt(mean((a_t - a_{t-1}) - (g_t - g_{t-1}))^2) x 100` per pair of consecutive frames, mean over the "
        "pairs (`diffusers_matte.video.VideoMetrics`): the flicker of the prediction beyond the ground truth's own "
        "change; dtSSD still: the same over the pixels whose ground truth did not change. frames/s: end to end "
        "(decoding, matting, smoothing, encoding), median over the clips; CPU ms/frame: the process's CPU time "
        "(all threads) per frame, median over the clips, less sensitive than wall time to the other jobs. The "
        f"smoothing itself takes {smoothing_cost:.2f} CPU ms per frame at {args.size}x{args.size} (timed alone), so "
        "differences in speed between the variants without the cut-out are the other jobs' doing.",
        "",
        "| speed | variant | SAD | MSE | dtSSD | dtSSD still | frames/s | CPU ms/frame | load avg before/after |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for speed, variant, summary, fps, cpu_ms, before, after in rows:
        lines.append(
            f"| {speed:g} | {variant} | {summary['sad']:.4f} | {summary['mse']:.4f} | {summary['dtssd']:.3f} | "
            f"{summary['dtssd_still']:.3f} | {fps:.1f} | {cpu_ms:.0f} | {before:.1f} / {after:.1f} |"
        )
    lines += ["", "Relative changes (from the table's figures):", "", *reading(rows)]
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
