# Copyright 2026 The diffusers-matte authors. Licensed under the Apache License, Version 2.0.
"""Where the time of one student self-attention layer goes (paper section 3.3), piece by piece, against the full
layer it replaces: the four projections, the down-sampling phi of the keys and values, the attention core.

The pieces are the layer's own modules and methods (diffusers' `Attention` with our `MatteAttnProcessor`, phi
through `MatteAttnProcessor.downsample`), called alone on the SD 2.1 student's shapes at batch 1 (16x16: 256
tokens of 1280 channels, 20 heads; 32x32: 1024 tokens of 640 channels, 10 heads), timed interleaved, median of
`--repeats` calls per round and of the rounds; rows marked "alternative" (phi's GEMM alone, phi's weight on
more tokens, phi as a convolution) are not summed into either layer. It answers why a layer with 18% fewer MACs
(16x16) is not faster: see the results' reading.

    python benchmarks/attention_parts.py --output benchmarks/results/attention_parts_cpu.md --overwrite
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

# (grid side, channels, heads) of the SD 2.1 student's self-attention layers that keep their attention
GRIDS = {"32x32": (32, 640, 10), "16x16": (16, 1280, 20)}
KV_DOWNSAMPLE = 2  # the student's 2x2 patches at both grids (`self_attention_kv_downsample=(-1, 2, 2)`)


def layer_pieces(side: int, channels: int, heads: int, dtype: torch.dtype, seed: int = 0) -> dict:
    """{piece: (callable, MACs)} of the full layer ("full: ...") and the optimised one ("optimised: ...")."""
    from diffusers.models.attention_processor import Attention

    from diffusers_matte.models.attention_processor import MatteAttnProcessor

    torch.manual_seed(seed)
    attn = Attention(query_dim=channels, heads=heads, dim_head=channels // heads).eval().to(dtype)
    processor = MatteAttnProcessor(hidden_size=channels, kv_downsample=KV_DOWNSAMPLE).eval().to(dtype)
    n, d, m = side * side, channels, (side // KV_DOWNSAMPLE) ** 2
    tokens = torch.randn(1, n, d, dtype=dtype)
    few = torch.randn(1, m, d, dtype=dtype)

    def heads_of(x: torch.Tensor) -> torch.Tensor:
        return x.view(1, -1, heads, d // heads).transpose(1, 2)

    q, k_full, k_few = heads_of(tokens), heads_of(tokens), heads_of(few)
    weight = processor.kv_down.weight
    patches = torch.randn(1, m, weight[0].numel(), dtype=dtype)  # what patchify hands the GEMM
    wide = torch.randn(1, n, weight[0].numel(), dtype=dtype)
    to_q = (lambda: attn.to_q(tokens), n * d * d)  # queries and output stay at full resolution in both
    to_out = (lambda: attn.to_out[0](tokens), n * d * d)
    return {
        f"full: to_q ({n} tokens)": to_q,
        f"full: to_k + to_v ({n} tokens)": (lambda: (attn.to_k(tokens), attn.to_v(tokens)), 2 * n * d * d),
        f"full: attention core ({n} x {n})": (
            lambda: F.scaled_dot_product_attention(q, k_full, k_full),
            2 * n * n * d,
        ),
        f"full: to_out ({n} tokens)": to_out,
        f"optimised: to_q ({n} tokens)": to_q,
        f"optimised: phi, patchify + linear ({n} -> {m} tokens)": (
            lambda: processor.downsample(tokens, (side, side)),
            m * KV_DOWNSAMPLE**2 * d * d,
        ),
        f"optimised: to_k + to_v ({m} tokens)": (lambda: (attn.to_k(few), attn.to_v(few)), 2 * m * d * d),
        f"optimised: attention core ({n} x {m})": (
            lambda: F.scaled_dot_product_attention(q, k_few, k_few),
            2 * n * m * d,
        ),
        f"optimised: to_out ({n} tokens)": to_out,
        # not part of either layer: what phi's time is made of, and another way to compute it
        f"alternative: phi's GEMM alone, patches given ({m} tokens)": (
            lambda: F.linear(patches, weight.flatten(1)),
            m * KV_DOWNSAMPLE**2 * d * d,
        ),
        f"alternative: phi's weight on {n} tokens (as at batch {n // m})": (
            lambda: F.linear(wide, weight.flatten(1)),
            n * KV_DOWNSAMPLE**2 * d * d,
        ),
        "alternative: phi as a strided conv2d on the channels-last view of the tokens": (
            lambda: F.conv2d(tokens.view(1, side, side, d).permute(0, 3, 1, 2), weight, stride=KV_DOWNSAMPLE),
            m * KV_DOWNSAMPLE**2 * d * d,
        ),
    }


def time_pieces(pieces: dict, rounds: int, repeats: int) -> dict[str, list[float]]:
    """Seconds per call of each piece: the median of `repeats` calls, for each of `rounds` interleaved rounds."""
    seconds: dict[str, list[float]] = {name: [] for name in pieces}
    names = list(pieces)
    with torch.inference_mode():
        for fn, _ in pieces.values():
            fn()  # warm-up
        for r in range(rounds):
            for name in names[r % len(names) :] + names[: r % len(names)]:
                calls = []
                for _ in range(repeats):
                    start = time.perf_counter()
                    pieces[name][0]()
                    calls.append(time.perf_counter() - start)
                seconds[name].append(statistics.median(calls))
    return seconds


def report_grid(grid: str, dtype_name: str, pieces: dict, seconds: dict) -> list[str]:
    lines = [
        f"### {grid}, {dtype_name}",
        "",
        "| piece | ms, median [min-max] | MMACs | GMACs per second |",
        "|---|---|---|---|",
    ]
    totals = {"full": [0.0, 0], "optimised": [0.0, 0]}
    for name, (_, macs) in pieces.items():
        ms = [1e3 * s for s in seconds[name]]
        median = statistics.median(ms)
        if name.split(":")[0] in totals:
            totals[name.split(":")[0]][0] += median
            totals[name.split(":")[0]][1] += macs
        lines.append(
            f"| {name} | {median:.2f} [{min(ms):.2f}-{max(ms):.2f}] | {macs / 1e6:.0f} | {macs / median / 1e6:.0f} |"
        )
    for kind, (ms, macs) in totals.items():
        lines.append(f"| **{kind} layer, sum of the pieces** | {ms:.2f} | {macs / 1e6:.0f} | {macs / ms / 1e6:.0f} |")
    (full_ms, full_macs), (opt_ms, opt_macs) = totals["full"], totals["optimised"]
    lines += ["", f"Optimised / full: {opt_ms / full_ms:.3f} of the time, {opt_macs / full_macs:.3f} of the MACs.", ""]
    return lines


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dtypes", default="fp32,bf16", help="comma-separated among fp32, bf16 (default: both)")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (default: 5)")
    parser.add_argument("--repeats", type=int, default=20, help="calls per piece and round (default: 20)")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default: 2)")
    parser.add_argument("--output", type=Path, default=Path("benchmarks/results/attention_parts_cpu.md"))
    parser.add_argument("--overwrite", action="store_true", help="replace --output if it exists")
    args = parser.parse_args(argv)
    dtypes = {"fp32": torch.float32, "bf16": torch.bfloat16}
    chosen = [d.strip() for d in args.dtypes.split(",") if d.strip()]
    if not chosen or set(chosen) - set(dtypes):
        parser.error(f"--dtypes: expected a comma-separated list of {tuple(dtypes)}, got {args.dtypes!r}")
    if args.rounds < 1 or args.repeats < 1:
        parser.error(f"--rounds and --repeats must be at least 1, got {args.rounds} and {args.repeats}")
    if args.output.exists() and not args.overwrite:
        parser.error(f"{args.output} exists; pass --overwrite to replace it or choose another --output")
    torch.set_num_threads(args.threads)
    command = "python benchmarks/attention_parts.py " + " ".join(sys.argv[1:] if argv is None else argv)
    lines = [
        "# One student self-attention layer, piece by piece (SD 2.1 student, batch 1)",
        "",
        f"Command: `{command.strip()}`",
        "",
        f"torch {torch.__version__}, {args.threads} threads; {args.rounds} interleaved rounds of {args.repeats} calls "
        "per piece. MMACs: multiply-accumulates of the piece (the core: QK^T and AV).",
        "",
    ]
    for dtype_name in chosen:
        for grid, (side, channels, heads) in GRIDS.items():
            pieces = layer_pieces(side, channels, heads, dtypes[dtype_name])
            lines += report_grid(grid, dtype_name, pieces, time_pieces(pieces, args.rounds, args.repeats))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text("\n".join(lines))
    print(f"Wrote {args.output}", file=sys.stderr)


if __name__ == "__main__":
    main()
