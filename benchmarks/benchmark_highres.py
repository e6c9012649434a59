# Copyright 2026 The diffusers-matte authors. Licensed under the Apache License, Version 2.0.
"""Time and peak memory of the high-resolution refiner: dense up-sampling vs the sparse refiner's two backends.

Target: at 4096x4096 with about 5% uncertain pixels, the sparse refiner stays under 4 GiB of CPU
memory and is faster than dense convolution.

    python benchmarks/benchmark_highres.py [--sizes 1024 2048 4096] [--backends dense torch spconv]
        [--uncertain 0.05] [--repeats 3] [--threads 1 2] [--device cpu] [--output benchmarks/results/highres_cpu.md]

Every (threads, size, backend) runs in a fresh subprocess, so that one run's allocations cannot hide another's peak.
Peak memory on CPU is the process's resident-set high-water mark, `VmHWM` in `/proc/self/status`, reset with
`echo 5 > /proc/self/clear_refs` after the model and inputs are built: the table gives that peak (whole process:
Python, torch, model, inputs, outputs) and its rise over the resident set just before the first call. On CUDA it
is `torch.cuda.max_memory_allocated`. Times are the median (and minimum) of `--repeats` calls after a warm-up
call, under `torch.inference_mode`; the dense path at 4096 runs once without warm-up (it takes a minute).

Inputs: a 512x512 alpha (the decoder's output) holding a soft disc whose edge ramp is sized so that about
`--uncertain` of the target pixels lie in (0.01, 0.99); a random 32-channel 512x512 context feature; a random image
at the target size. The refiner has the default configuration with random weights (seeded).
"""

import argparse
import json
import math
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
from cost_measurement import proc_status_bytes
from tqdm.auto import tqdm

from diffusers_matte.models.sparse_refiner import (
    SparseMatteRefiner,
    is_spconv_available,
)

LOW_RES = 512
MEMORY_TARGET_GIB = 4.0


def make_inputs(size: int, uncertain: float, device: torch.device, seed: int = 0):
    """Image at `size`x`size`, 512x512 alpha with a disc whose ramp covers about `uncertain` of the area, context."""
    g = torch.Generator().manual_seed(seed)
    radius = 0.6  # in [-1, 1] coordinates
    # The ramp alpha = (radius - r) / width + 0.5 is uncertain on an annulus of width 0.98 * width: its share of
    # the 2x2 square is 2 * pi * radius * 0.98 * width / 4.
    width = uncertain * 4 / (2 * math.pi * radius * 0.98)
    coords = (torch.arange(LOW_RES) + 0.5) / LOW_RES * 2 - 1
    r = (coords[:, None] ** 2 + coords[None, :] ** 2).sqrt()
    alpha = ((radius - r) / width + 0.5).clamp(0, 1)[None, None]
    context = torch.randn(1, 32, LOW_RES, LOW_RES, generator=g)
    image = torch.rand(1, 3, size, size, generator=g) * 2 - 1
    return image.to(device), alpha.to(device), context.to(device)


def make_refiner(device: torch.device) -> SparseMatteRefiner:
    torch.manual_seed(0)
    refiner = SparseMatteRefiner().eval()
    with torch.no_grad():  # the last layers start at zero: make them act, like trained ones
        for group in refiner.groups:
            group.convs[-1].weight.normal_(0.0, 0.01)
    return refiner.to(device)


def worker(args) -> dict:
    """One configuration, in its own process; returns what the table needs."""
    device = torch.device(args.device)
    torch.set_num_threads(args.threads)
    refiner = make_refiner(device)
    image, alpha, context = make_inputs(args.size, args.uncertain, device)
    cuda = device.type == "cuda"

    def call():
        if cuda:
            torch.cuda.synchronize()
        start, cpu_start = time.perf_counter(), time.process_time()
        out = refiner(image, alpha, context, backend=args.backend)
        if cuda:
            torch.cuda.synchronize()
        return time.perf_counter() - start, time.process_time() - cpu_start, out

    slow = args.backend == "dense" and args.size >= 4096 and not cuda
    warmup, repeats = (0, 1) if slow else (1, args.repeats)
    if cuda:
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    else:
        Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current resident set
        base = proc_status_bytes("VmRSS")
    load_before = os.getloadavg()[0]
    times, cpu_times = [], []
    with torch.inference_mode():
        for i in range(warmup + repeats):
            elapsed, cpu_elapsed, out = call()
            if i >= warmup:
                times.append(elapsed)
                cpu_times.append(cpu_elapsed)
    peak = torch.cuda.max_memory_allocated() if cuda else proc_status_bytes("VmHWM")
    fractions = [n / (h * w) for n, (h, w) in zip(out.num_active, out.sizes)]
    return {
        "size": args.size,
        "backend": args.backend,
        "median_s": statistics.median(times),
        "min_s": min(times),
        "cpu_s": statistics.median(cpu_times),
        "runs": len(times),
        "peak_bytes": peak,
        "base_bytes": base,
        "uncertain": fractions,
        "threads": torch.get_num_threads(),
        "load": [load_before, os.getloadavg()[0]],
    }


def run_one(size: int, backend: str, threads: int, args) -> dict:
    cmd = [
        sys.executable,
        __file__,
        "--worker",
        f"--size={size}",
        f"--backend={backend}",
        f"--threads={threads}",
        f"--uncertain={args.uncertain}",
        f"--repeats={args.repeats}",
        f"--device={args.device}",
    ]
    # Idle OpenMP threads sleep instead of spinning: on a shared, oversubscribed machine spinning threads made
    # runs of many small operators up to 20x slower, at random (measured: 0.26 s or 5.2 s for the same call).
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "OMP_WAIT_POLICY": "PASSIVE"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout, env=env)
    if proc.returncode != 0:
        return {
            "size": size,
            "backend": backend,
            "threads": threads,
            "error": proc.stderr.strip().splitlines()[-1],
        }
    return json.loads(proc.stdout.strip().splitlines()[-1])


def format_table(rows: list[dict]) -> str:
    gib = 1024**3
    lines = [
        "| long edge | backend | threads | time s, median (min) | CPU time s | runs | peak memory GiB | rise GiB "
        "| uncertain % (groups) | load avg before/after |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        if "error" in row:
            lines.append(
                f"| {row['size']} | {row['backend']} | {row['threads']} | failed: {row['error']} | | | | | | |"
            )
            continue
        uncertain = " / ".join(f"{100 * f:.1f}" for f in row["uncertain"])
        lines.append(
            f"| {row['size']} | {row['backend']} | {row['threads']} | {row['median_s']:.3f} ({row['min_s']:.3f}) | {row['cpu_s']:.2f} "
            f"| {row['runs']} "
            f"| {row['peak_bytes'] / gib:.2f} | {(row['peak_bytes'] - row['base_bytes']) / gib:.2f} | {uncertain} "
            f"| {row['load'][0]:.1f} / {row['load'][1]:.1f} |"
        )
    return "\n".join(lines)


def verdict(rows: list[dict]) -> list[str]:
    """The issue's two checks at the largest size, for each sparse backend and thread count that ran."""
    size = max(r["size"] for r in rows)
    at = {(r["backend"], r["threads"]): r for r in rows if r["size"] == size and "error" not in r}
    notes = []
    for (backend, threads), row in at.items():
        if backend == "dense":
            continue
        peak = row["peak_bytes"] / 1024**3
        notes.append(
            f"- {size}x{size}, {backend}, {threads} thread(s): peak {peak:.2f} GiB, "
            f"{'under' if peak < MEMORY_TARGET_GIB else 'NOT under'} {MEMORY_TARGET_GIB:g} GiB"
        )
        dense = at.get(("dense", threads))
        if dense is not None:
            speedup = dense["median_s"] / row["median_s"]
            notes[-1] += f"; {speedup:.1f}x {'faster' if speedup > 1 else 'SLOWER'} than dense"
    return notes


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1024, 2048, 4096])
    parser.add_argument("--backends", nargs="+", default=["dense", "torch", "spconv"])
    parser.add_argument("--uncertain", type=float, default=0.05, help="target share of uncertain pixels")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--threads",
        type=int,
        nargs="+",
        default=[1, 2],
        help="torch/OpenMP thread counts to compare",
    )
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--timeout", type=int, default=1200, help="seconds per configuration")
    parser.add_argument(
        "--output",
        type=Path,
        default=None,
        help="defaults to benchmarks/results/highres_<device>.md",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --output file")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--backend", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker:
        args.threads = args.threads[0]
        print(json.dumps(worker(args)))
        return

    output = args.output or Path(__file__).parent / "results" / f"highres_{args.device}.md"
    if output.exists() and not args.overwrite:
        parser.error(f"{output} exists: pass --overwrite to replace it, or choose another --output.")
    backends = [b for b in args.backends if b != "spconv" or is_spconv_available(args.device)]
    skipped = sorted(set(args.backends) - set(backends))

    rows = []
    configurations = [(s, b, t) for t in args.threads for s in args.sizes for b in backends]
    for size, backend, threads in tqdm(configurations, desc="configurations"):
        rows.append(run_one(size, backend, threads, args))
        tqdm.write(format_table(rows[-1:]).splitlines()[-1])

    table = format_table(rows)
    command = "python benchmarks/benchmark_highres.py " + shlex.join(sys.argv[1:])
    spconv_version = "not installed"
    if is_spconv_available(args.device):
        import spconv

        spconv_version = spconv.__version__
    text = "\n\n".join(
        [
            f"# High-resolution refiner: dense up-sampling vs sparse refiner ({args.device})",
            f"Command: `{command}`",
            f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__} "
            f"({os.cpu_count()} cores), spconv {spconv_version}"
            + (f" (skipped: {', '.join(skipped)} unavailable)" if skipped else "")
            + ". Shared with other jobs: the load average (1 min) before and after each configuration is in the "
            "table. Workers run with `OMP_NUM_THREADS` = threads and `OMP_WAIT_POLICY=PASSIVE`: with spinning "
            "OpenMP threads the same call took 0.26 s or 5.2 s at random on this oversubscribed machine. spconv's "
            "convolutions run on one thread whatever the setting (its CPU kernels race on more; see the module).",
            "Each configuration runs in a fresh process. Peak memory: `VmHWM` of `/proc/self/status` after resetting "
            "it (`echo 5 > /proc/self/clear_refs`) once the model and inputs are built; whole process. Rise: peak "
            "minus the resident set just before the first call. Time: wall-clock median (min) over the runs after one warm-up "
            "(dense at 4096: one run, no warm-up); CPU time: median process CPU time (user + system, all threads) of "
            "the same runs, less sensitive to other jobs than wall time. Uncertain %: share of pixels each group convolved (sparse) or "
            "masked (dense), group 1 at half the size, group 2 at full size.",
            table,
            "Checks against the target:\n" + "\n".join(verdict(rows)),
        ]
    )
    print("\n" + table + "\n\n" + "\n".join(verdict(rows)))
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(text + "\n")
    print(f"\nwrote {output}")


if __name__ == "__main__":
    main()
