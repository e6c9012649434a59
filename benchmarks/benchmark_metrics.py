# Copyright 2026 The diffusers-matte authors. Licensed under the Apache License, Version 2.0.
"""CPU time of SAD, MSE, GRAD and CONN (diffusers_matte.metrics) on one core.

Targets: all four metrics on one 512x512 pair < 0.15 s, on one 2048x2048 pair < 3 s.

    python benchmarks/benchmark_metrics.py [--repeats 7] [--output benchmarks/results/metrics_cpu.md]

The process pins itself to one CPU core and runs NumPy/SciPy/torch single-threaded. Each figure is the median
(and the minimum) of several repetitions after a warm-up call: on a shared machine single timings are noisy.
"""

import os

# Single-threaded math libraries: must be set before NumPy / SciPy / torch are imported.
for _var in (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "NUMEXPR_NUM_THREADS",
):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import platform  # noqa: E402
import shlex  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
from scipy import ndimage  # noqa: E402

from diffusers_matte.metrics import all_metrics, conn, grad, mse, sad  # noqa: E402

TARGETS_S = {512: 0.15, 2048: 3.0}


def make_pair(size: int, kind: str, seed: int = 0):
    """A uint8-quantised (pred, gt) pair. ``matte``: soft blobs with a shifted, noisy, partly wrong prediction;
    ``noise``: independent uniform noise, the worst case for CONN (thousands of components per threshold).
    """
    rng = np.random.default_rng(seed)
    if kind == "noise":
        return (
            np.round(rng.random((size, size)) * 255) / 255,
            np.round(rng.random((size, size)) * 255) / 255,
        )
    seeds = (rng.random((size, size)) < 20 / size**2).astype(np.float64)
    gt = np.clip(
        ndimage.gaussian_filter(seeds, size / 25) * 2.5 * (size / 25) ** 2 * 2 * np.pi,
        0,
        1,
    )
    pred = np.roll(gt, (size // 100, -size // 150), (0, 1)) + 0.05 * rng.standard_normal((size, size))
    pred[: size // 8, : size // 8] = 0.8  # a false positive
    return np.round(np.clip(pred, 0, 1) * 255) / 255, np.round(gt * 255) / 255


def timeit(fn, repeats: int):
    fn()  # warm-up (kernel cache, page faults)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times)), float(np.min(times))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--repeats",
        type=int,
        default=7,
        help="timed repetitions per figure (median reported)",
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[512, 2048])
    parser.add_argument(
        "--output",
        type=Path,
        default=None,
        help="also write the table as Markdown here",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --output file")
    args = parser.parse_args(argv)
    if args.output is not None and args.output.exists() and not args.overwrite:
        parser.error(f"{args.output} exists; pass --overwrite to replace it")

    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    torch.set_num_threads(1)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else "?"

    rows = []
    for size in args.sizes:
        for kind in ("matte", "noise"):
            pred, gt = make_pair(size, kind)
            figures = {
                name: timeit(lambda f=f: f(pred, gt), args.repeats)
                for name, f in (
                    ("sad", sad),
                    ("mse", mse),
                    ("grad", grad),
                    ("conn", conn),
                )
            }
            figures["all four"] = timeit(lambda: all_metrics(pred, gt), args.repeats)
            target = TARGETS_S.get(size)
            verdict = "-" if target is None else ("pass" if figures["all four"][0] < target else "FAIL")
            rows.append((size, kind, figures, target, verdict))
            print(
                f"{size}x{size} {kind:5s} "
                + " ".join(f"{name} {med:.4f}s" for name, (med, _) in figures.items())
                + (f"  (target {target} s: {verdict})" if target else ""),
                flush=True,
            )

    load = " / ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
    lines = [
        "# Metrics CPU timing (diffusers_matte.metrics)",
        "",
        f"Command: `{' '.join(shlex.quote(a) for a in [Path(sys.executable).name, *sys.argv])}`",
        "",
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, pinned to {cores} core, "
        f"single-threaded NumPy {np.__version__} / SciPy {__import__('scipy').__version__}; load average after "
        f"the run (1/5/15 min): {load}. The machine is shared with other jobs: figures are the median (min) of "
        f"{args.repeats} repetitions after one warm-up call.",
        "",
        "Inputs: uint8-quantised alphas. `matte`: soft blobs vs a shifted, noisy prediction with a false positive;"
        " `noise`: independent uniform noise (many small components per threshold, hard for CONN).",
        "",
        "| size | input | SAD s | MSE s | GRAD s | CONN s | all four s | target | result |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for size, kind, figures, target, verdict in rows:
        cells = [f"{med:.4f} ({low:.4f})" for med, low in figures.values()]
        lines.append(f"| {size}x{size} | {kind} | " + " | ".join(cells) + f" | {target or '-'} | {verdict} |")
    if args.output is not None:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text("\n".join(lines) + "\n", encoding="utf-8")
        print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
