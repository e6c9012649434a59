# Copyright 2026 The diffusers-matte authors. Licensed under the Apache License, Version 2.0.
"""Parameters, MACs and CPU latency of the teacher UNet, the BK-SDM tiny UNet and the optimised student.

For Stable Diffusion 1.5 and 2.1 (base), the three UNets are built from configs with random weights
(nothing is downloaded):

- teacher: the full SD UNet with the region head (paper section 3.2.1);
- tiny: `MatteUNet2DConditionModel.from_teacher(teacher, "tiny", prediction_head="matte")` (BK-SDM tiny);
- student: the same with `self_attention_kv_downsample=(-1, 2, 2)` (section 3.3): self-attention removed at
  64x64, keys and values from a 2x2 stride-2 down-sampling at 32x32 and 16x16.

It reports parameters, GMACs at a 512x512 input (64x64 latent, 77 text tokens) with the attention matmuls
counted, the per-layer GMACs of the optimised self-attention next to the full layer (with the appendix 6.1
formula, as printed and counted consistently), and the CPU latency of one UNet forward in fp32 and bf16.
Latency is measured in one process with the three models interleaved in every round (the starting model
rotates), so that the student/teacher ratio of a round compares models run under the same machine load;
the foreign CPU load of every call is read from /proc/stat and reported.

Examples::

    # the committed result (about 10-20 minutes on 2 shared cores)
    python benchmarks/benchmark_unet.py --output benchmarks/results/unet_cpu.md --overwrite
    # a quick look
    python benchmarks/benchmark_unet.py --models sd21 --dtypes bf16 --rounds 2 --output /tmp/unet.md
"""

from __future__ import annotations

import argparse
import datetime
import gc
import os
import platform
import shlex
import statistics
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cost_measurement import (
    CLEAN_LOAD,
    CallRecord,
    MacCount,
    ModuleTimer,
    appendix_sa_complexity,
    count_macs,
    count_parameters,
    time_interleaved,
)

if TYPE_CHECKING:  # heavy imports stay inside functions so that `--help` answers at once
    import torch
    from torch import nn

MODEL_KINDS = ("teacher", "tiny", "student")
DTYPES = ("fp32", "bf16")
LATENT_SIZE = 64  # 512 x 512 pixels through the VAE's factor 8
TEXT_TOKENS = 77
STUDENT_KV_DOWNSAMPLE = (
    -1,
    2,
    2,
)  # section 3.3: remove SA at 64x64, k = 2 at 32x32 and 16x16
TARGET_RATIO = 0.45  # the target: SD 2.1 student latency at most 0.45 of the teacher's
MIN_CLEAN_FOR_VERDICT = 3  # clean rounds needed to base the ratios on clean rounds only
PARAMS_TOLERANCE = 0.01

_SD_LAYOUT = {
    "sample_size": LATENT_SIZE,
    "in_channels": 4,
    "out_channels": 4,
    "down_block_types": ("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
    "up_block_types": ("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
    "block_out_channels": (320, 640, 1280, 1280),
    "layers_per_block": 2,
    "norm_num_groups": 32,
}
# UNet configs of runwayml/stable-diffusion-v1-5 and stabilityai/stable-diffusion-2-1-base (as diffusers
# names them: `attention_head_dim` holds the number of heads).
SD_UNET_CONFIGS = {
    "sd15": {**_SD_LAYOUT, "cross_attention_dim": 768, "attention_head_dim": 8},
    "sd21": {
        **_SD_LAYOUT,
        "cross_attention_dim": 1024,
        "attention_head_dim": (5, 10, 20, 20),
        "use_linear_projection": True,
        "upcast_attention": False,
    },
}
SD_NAMES = {"sd15": "SD 1.5", "sd21": "SD 2.1-base"}
# UNet parameters (latent conv_out) reported by BK-SDM (Kim et al. 2024) for SD v1.x and BK-SDM-Tiny.
BKSDM_REFERENCE_PARAMS = {("sd15", "teacher"): 859.52e6, ("sd15", "tiny"): 323.38e6}
LATENT_CONV_OUT_PARAMS = 320 * 4 * 3 * 3 + 4  # the SD conv_out that the prediction heads replace

FORMULA_NOTE = (
    "Appendix 6.1 (eqs. 10-12) counts additions and multiplications (FLOPs, 2 per multiply-add) for every "
    "term except the down-sampling convolution phi, which it counts as j x (n/j) x d x d = n d^2, i.e. in "
    "multiply-adds. Counting phi in FLOPs too (2 n d^2) gives O_Sp.SA = (4 + 4/j) n d^2 + 4 n^2 d / j + "
    "4 n^2 / j - 1, and the ratios become about 0.53 (32x32, d=640) and 0.77 (16x16, d=1280) instead of "
    "0.4515 and 0.6176. The measured columns are multiply-adds of the diffusers layer (FlopCounterMode on "
    "matmuls and convolutions; the SDPA core added by shape; softmax, scaling and biases are not counted). "
    "Without the output projection `to_out` (n d^2, absent from eqs. 10-11) they agree with the consistent "
    "formula; with it, the saving is smaller still. At 16x16 the attention core (n^2 d) is small next to "
    "the projections (n d^2), so phi costs about as much as it saves."
)


# ---------------------------------------------------------------------------------------------------------
# Model building


def sd_unet_config(name: str) -> dict:
    """The UNet config of a Stable Diffusion version (`"sd15"` or `"sd21"`)."""
    if name not in SD_UNET_CONFIGS:
        raise ValueError(f"Unknown model {name!r}: expected one of {tuple(SD_UNET_CONFIGS)}.")
    return dict(SD_UNET_CONFIGS[name])


def build_unets(name: str, seed: int = 0) -> dict[str, nn.Module]:
    """Teacher (region head), BK-SDM tiny and optimised student (matte head), random weights, eval mode."""
    import torch

    from diffusers_matte.models.unet_matte import MatteUNet2DConditionModel

    torch.manual_seed(seed)
    teacher = MatteUNet2DConditionModel(**sd_unet_config(name), prediction_head="region")
    tiny = MatteUNet2DConditionModel.from_teacher(teacher, "tiny", prediction_head="matte")
    student = MatteUNet2DConditionModel.from_teacher(
        teacher,
        "tiny",
        prediction_head="matte",
        self_attention_kv_downsample=STUDENT_KV_DOWNSAMPLE,
    )
    return {
        "teacher": teacher.eval(),
        "tiny": tiny.eval(),
        "student": student.eval(),
    }


def unet_inputs(
    unet: nn.Module, dtype: torch.dtype, batch_size: int = 1, seed: int = 0, channels_last: bool = False
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(latents, timestep, encoder_hidden_states) of a 512x512 image and a 77-token prompt; with `channels_last`,
    the latents in the layout the pipeline gives them on CPU (`cpu_channels_last`)."""
    import torch

    from diffusers_matte.pipelines.soft_grounding.pipeline_soft_grounding import (
        cpu_channels_last,
    )

    generator = torch.Generator().manual_seed(seed)
    config = unet.config
    latents = torch.randn(batch_size, config.in_channels, LATENT_SIZE, LATENT_SIZE, generator=generator)
    if channels_last:
        latents = cpu_channels_last(latents)
    text = torch.randn(batch_size, TEXT_TOKENS, config.cross_attention_dim, generator=generator)
    timestep = torch.full((batch_size,), config.prediction_timestep)
    return latents.to(dtype), timestep, text.to(dtype)


def self_attention_layer_names(unet: nn.Module) -> list[str]:
    """Names of the self-attention layers (`attn1` of each transformer block), removed ones included."""
    from diffusers.models.attention import BasicTransformerBlock

    return [
        f"{name}.attn1"
        for name, module in unet.named_modules()
        if isinstance(module, BasicTransformerBlock) and not module.only_cross_attention
    ]


def block_names(unet: nn.Module) -> list[str]:
    """Top-level stages of the UNet timed separately: down blocks, mid block, up blocks, head."""
    names = [f"down_blocks.{i}" for i in range(len(unet.down_blocks))]
    names += ["mid_block"] if unet.mid_block is not None else []
    names += [f"up_blocks.{i}" for i in range(len(unet.up_blocks))]
    return names + ["conv_out"]


# ---------------------------------------------------------------------------------------------------------
# Report


def md_table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _median_range(values: Sequence[float], fmt: str = "{:.3f}") -> str:
    return f"{fmt.format(statistics.median(values))} " f"[{fmt.format(min(values))}-{fmt.format(max(values))}]"


def _grid(shape: tuple[int, ...] | None) -> str:
    if not shape:
        return "?"
    side = int(round(shape[1] ** 0.5))
    return f"{side}x{side}" if side * side == shape[1] else f"{shape[1]} tokens"


class Report:
    """Markdown written to the output file and echoed to stdout section by section."""

    def __init__(self):
        self.parts: list[str] = []

    def add(self, text: str = "") -> None:
        self.parts.append(text)
        print(text, flush=True)

    def text(self) -> str:
        return "\n".join(self.parts).rstrip() + "\n"


def report_parameters(report: Report, name: str, models: dict[str, nn.Module]) -> None:
    rows = []
    for kind, model in models.items():
        params = count_parameters(model)
        reference = BKSDM_REFERENCE_PARAMS.get((name, kind))
        if reference is None:
            ref_text = diff_text = "-"
        else:
            diff = params["latent_head"] / reference - 1
            ok = "ok" if abs(diff) <= PARAMS_TOLERANCE else "OFF by more than 1%"
            ref_text = f"{reference / 1e6:.2f}M"
            diff_text = f"{diff:+.2%} ({ok})"
        rows.append(
            (
                kind,
                f"{params['total'] / 1e6:.2f}M",
                f"{params['latent_head'] / 1e6:.2f}M",
                ref_text,
                diff_text,
            )
        )
    report.add(f"### Parameters, {SD_NAMES[name]}")
    report.add()
    report.add(
        md_table(
            (
                "UNet",
                "with its head",
                "with SD's latent conv_out",
                "BK-SDM reports",
                "difference",
            ),
            rows,
        )
    )
    report.add()


def report_macs(
    report: Report,
    name: str,
    macs: dict[str, MacCount],
    shapes: dict[str, dict[str, tuple[int, ...]]],
) -> None:
    teacher = macs["teacher"].total
    rows = [
        (
            kind,
            f"{m.conv_linear / 1e9:.1f}",
            f"{m.attention / 1e9:.1f}",
            f"{m.total / 1e9:.1f}",
            f"{m.by_module.get('conv_out', 0) / 1e9:.1f}",
            f"{m.total / teacher:.3f}",
        )
        for kind, m in macs.items()
    ]
    report.add(f"### GMACs at 512x512, {SD_NAMES[name]}")
    report.add()
    report.add(
        md_table(
            (
                "UNet",
                "conv + linear",
                "attention matmuls (QK^T, AV)",
                "total",
                "of which the head",
                "total / teacher",
            ),
            rows,
        )
    )
    report.add()
    report.add(
        "'conv + linear' is what `FlopCounterMode` reports by itself on CPU (it scores SDPA as zero); "
        "'attention matmuls' are added from the SDPA shapes. The head (two 3x3 ConvBNReLU at 64x64 and a 1x1 "
        "classifier) replaces SD's latent `conv_out`; subtract it to compare with SD / BK-SDM figures."
    )
    report.add()

    # One layer per resolution: the tiny UNet's full layer against the student's layer at the same place.
    rows, seen = [], set()
    for layer, shape in shapes["student"].items():
        grid = _grid(shape)
        if grid in seen:
            continue
        seen.add(grid)
        n, d = shape[1], shape[2]
        full, optimised = macs["tiny"].by_module.get(layer, 0), macs["student"].by_module.get(layer, 0)
        to_out = macs["tiny"].by_module.get(f"{layer}.to_out.0", 0)
        to_out_s = macs["student"].by_module.get(f"{layer}.to_out.0", 0)
        factor = STUDENT_KV_DOWNSAMPLE[_level_of_grid(n)]
        if factor == -1:
            paper = consistent = "0 (removed)"
            excl = "0"
        else:
            j = factor**2
            full_eq = appendix_sa_complexity(n, d)
            paper = f"{appendix_sa_complexity(n, d, j) / full_eq:.4f}"
            consistent = f"{appendix_sa_complexity(n, d, j, phi_in_flops=True) / full_eq:.4f}"
            excl = f"{(optimised - to_out_s) / (full - to_out):.4f}"
        rows.append(
            (
                grid,
                n,
                d,
                f"{full / 1e9:.3f}",
                f"{optimised / 1e9:.3f}",
                f"{optimised / full:.4f}",
                excl,
                paper,
                consistent,
            )
        )
    report.add(f"### One self-attention layer, full vs optimised, {SD_NAMES[name]}")
    report.add()
    report.add(
        md_table(
            (
                "grid",
                "n",
                "d",
                "full GMACs",
                "optimised GMACs",
                "measured ratio",
                "measured ratio without to_out",
                "eqs. 10-12 as printed",
                "eqs. 10-12, phi in FLOPs",
            ),
            rows,
        )
    )
    report.add()
    report.add(FORMULA_NOTE)
    report.add()


def _level_of_grid(num_tokens: int) -> int:
    side = int(round(num_tokens**0.5))
    return (LATENT_SIZE // side).bit_length() - 1


def _stage_label(unet_config, name: str) -> str:
    """Stage name with its resolution, so that teacher and pruned stages at the same grid line up."""
    levels = len(unet_config.block_out_channels)
    kind, _, index = name.partition(".")
    if kind == "down_blocks":
        level = int(index)
    elif kind == "up_blocks":
        level = levels - 1 - int(index)
    elif kind == "mid_block":
        level = levels - 1
    else:
        return "head (conv_out)"
    grid = LATENT_SIZE >> level
    return f"{kind.split('_')[0]} {grid}x{grid}"


@dataclass
class RoundStats:
    """The interleaved rounds of one (model, dtype) and their foreign load."""

    records: list[CallRecord]

    def __post_init__(self):
        self.by_round: dict[int, dict[str, CallRecord]] = {}
        for rec in self.records:
            self.by_round.setdefault(rec.round, {})[rec.kind] = rec
        self.rounds = sorted(self.by_round)
        self.kinds = list(self.by_round[self.rounds[0]])

    def load(self, r: int) -> float:
        """Foreign CPUs averaged over the round."""
        calls = self.by_round[r].values()
        return sum(c.measured.foreign_cpu for c in calls) / sum(c.measured.seconds for c in calls)

    def max_call_load(self, r: int) -> float:
        return max(c.measured.foreign_load for c in self.by_round[r].values())

    @property
    def clean_rounds(self) -> list[int]:
        """Rounds in which no call saw a foreign load of CLEAN_LOAD or more."""
        return [r for r in self.rounds if self.max_call_load(r) < CLEAN_LOAD]

    def seconds(self, kind: str, rounds: Sequence[int] | None = None) -> list[float]:
        return [self.by_round[r][kind].measured.seconds for r in (self.rounds if rounds is None else rounds)]

    def cpu_ratios(self, kind: str, rounds: Sequence[int] | None = None) -> list[float]:
        """Per-round own CPU time of `kind` over the teacher's: less sensitive to foreign load than wall
        time, but it counts the CPU that OpenMP threads spin while waiting for a descheduled partner.
        """
        return [
            self.by_round[r][kind].measured.own_cpu / self.by_round[r]["teacher"].measured.own_cpu
            for r in (self.rounds if rounds is None else rounds)
        ]

    def ratios(self, kind: str, rounds: Sequence[int] | None = None) -> list[float]:
        """Per-round latency of `kind` over the teacher's in the same round."""
        return [
            self.by_round[r][kind].measured.seconds / self.by_round[r]["teacher"].measured.seconds
            for r in (self.rounds if rounds is None else rounds)
        ]


def report_latency(
    report: Report,
    name: str,
    dtype: str,
    records: list[CallRecord],
    shapes: dict[str, dict[str, tuple[int, ...]]],
    models: dict[str, nn.Module],
) -> dict[str, Any]:
    """Write the latency section of one (model, dtype); return the median ratios to the teacher."""
    stats = RoundStats(records)
    kinds, rounds, clean = stats.kinds, stats.rounds, stats.clean_rounds
    loads = [stats.load(r) for r in rounds]
    title = f"{SD_NAMES[name]}, {dtype}"
    report.add(f"### Latency of one UNet forward, {title}")
    report.add()
    report.add(
        f"{len(rounds)} interleaved rounds. Foreign CPU load (CPUs busy with other processes, of "
        f"{os.cpu_count()}) per round: median {statistics.median(loads):.2f}, range "
        f"{min(loads):.2f}-{max(loads):.2f}; {len(clean)} clean round(s) (every call below {CLEAN_LOAD})."
    )
    report.add()
    rows = []
    for k in kinds:
        clean_ratio = _median_range(stats.ratios(k, clean)) if clean else "- (no clean round)"
        rows.append(
            (
                k,
                _median_range(stats.seconds(k)),
                _median_range(stats.ratios(k)),
                clean_ratio,
                f"{statistics.median(stats.cpu_ratios(k)):.3f}",
            )
        )
    report.add(
        md_table(
            (
                "UNet",
                "seconds, median [min-max]",
                "/ teacher: median of per-round ratios [min-max]",
                "/ teacher, clean rounds only",
                "/ teacher by own CPU time, all rounds",
            ),
            rows,
        )
    )
    report.add()
    # The verdict uses the clean rounds when there are enough of them: under foreign load the two cores are
    # shared unevenly within a round, and per-round ratios scatter widely (see the per-round table).
    used = clean if len(clean) >= MIN_CLEAN_FOR_VERDICT else rounds
    used_text = "clean rounds" if used is clean else "all rounds"
    ratio = statistics.median(stats.ratios("student", used))
    verdict = "met" if ratio <= TARGET_RATIO else "NOT met"
    caveat = (
        ""
        if used is clean
        else f" Fewer than {MIN_CLEAN_FOR_VERDICT} clean rounds: the figure includes rounds under foreign load."
    )
    report.add(
        f"**Student / teacher = {ratio:.3f}, median over {len(used)} {used_text} (target <= "
        f"{TARGET_RATIO}: {verdict}).**{caveat}"
    )
    report.add()

    round_rows = [
        (
            r,
            " > ".join(rec.kind for rec in records if rec.round == r),
            *(f"{stats.by_round[r][k].measured.seconds:.3f}" for k in kinds),
            f"{stats.ratios('student', [r])[0]:.3f}",
            f"{stats.load(r):.2f}",
            f"{stats.max_call_load(r):.2f}",
        )
        for r in rounds
    ]
    report.add(
        "<details><summary>Per round</summary>\n\n"
        + md_table(
            (
                "round",
                "order",
                *(f"{k} s" for k in kinds),
                "student / teacher",
                "foreign load",
                "max over calls",
            ),
            round_rows,
        )
        + "\n\n</details>"
    )
    report.add()
    report_stage_times(report, title, stats, models, used, used_text)
    report_layer_times(report, title, stats, shapes, used, used_text)
    ratios = {k: statistics.median(stats.ratios(k, used)) for k in kinds}
    return {**ratios, "basis": f"{len(used)} {used_text}"}


def report_stage_times(
    report: Report,
    title: str,
    stats: RoundStats,
    models: dict[str, nn.Module],
    rounds: list[int],
    used_text: str,
) -> None:
    """Median time of each stage (down / mid / up blocks, head) per model, aligned by resolution."""
    rows: dict[str, dict[str, str]] = {}
    for k in stats.kinds:
        stages = block_names(models[k])
        for stage in stages:
            values = [1e3 * stats.by_round[r][k].module_times.get(stage, 0.0) for r in rounds]
            label = _stage_label(models[k].config, stage)
            rows.setdefault(label, {})[k] = f"{statistics.median(values):.1f} ({stage})"
        rest = [
            1e3
            * (
                stats.by_round[r][k].measured.seconds
                - sum(stats.by_round[r][k].module_times.get(s, 0.0) for s in stages)
            )
            for r in rounds
        ]
        rows.setdefault("rest (embeddings, conv_in, final norm)", {})[k] = f"{statistics.median(rest):.1f}"
        attn = [
            1e3 * sum(t for m, t in stats.by_round[r][k].module_times.items() if m.endswith("attn1")) for r in rounds
        ]
        rows.setdefault("all self-attention layers (inside the stages above)", {})[
            k
        ] = f"{statistics.median(attn):.1f}"
    report.add(f"Where the time goes ({title}; median ms per call over {used_text}):")
    report.add()
    report.add(
        md_table(
            ("stage", *(f"{k} ms" for k in stats.kinds)),
            [(label, *(c.get(k, "-") for k in stats.kinds)) for label, c in rows.items()],
        )
    )
    report.add()


def report_layer_times(
    report: Report,
    title: str,
    stats: RoundStats,
    shapes: dict[str, dict[str, tuple[int, ...]]],
    rounds: list[int],
    used_text: str,
) -> None:
    """Each student self-attention layer against the full tiny-UNet layer it replaces (same name)."""

    def layer_ms(kind: str, layer: str) -> list[float]:
        return [1e3 * stats.by_round[r][kind].module_times[layer] for r in rounds]

    teacher_by_grid: dict[str, list[float]] = {}
    for layer, shape in shapes["teacher"].items():
        if layer.endswith("attn1"):
            teacher_by_grid.setdefault(_grid(shape), []).extend(layer_ms("teacher", layer))
    rows, slower = [], []
    for layer, shape in shapes["student"].items():
        if not layer.endswith("attn1"):
            continue
        full, opt = layer_ms("tiny", layer), layer_ms("student", layer)
        ratio = statistics.median(o / f for o, f in zip(opt, full))
        full_ms, opt_ms = statistics.median(full), statistics.median(opt)
        grid = _grid(shapes["tiny"].get(layer, shape))
        factor = STUDENT_KV_DOWNSAMPLE[_level_of_grid(shape[1])]
        change = "removed" if factor == -1 else f"K/V from {factor}x{factor} patches"
        if ratio >= 1:
            note = f"NOT faster: +{opt_ms - full_ms:.1f} ms (ratio {ratio:.2f})"
            slower.append(f"`{layer}` ({grid}): +{opt_ms - full_ms:.1f} ms, ratio {ratio:.2f}")
        else:
            note = f"faster by {full_ms - opt_ms:.1f} ms"
        teacher_ms = teacher_by_grid.get(grid)
        rows.append(
            (
                f"`{layer}`",
                grid,
                change,
                f"{statistics.median(teacher_ms):.1f}" if teacher_ms else "-",
                f"{full_ms:.1f}",
                f"{opt_ms:.1f}",
                f"{ratio:.3f}",
                note,
            )
        )
    report.add(
        f"Self-attention layers ({title}; median ms over {used_text}; ratio = median of per-round "
        "optimised / full):"
    )
    report.add()
    report.add(
        md_table(
            (
                "layer (tiny and student)",
                "grid",
                "student",
                "a teacher layer at this grid",
                "full (tiny)",
                "optimised (student)",
                "ratio",
                "verdict",
            ),
            rows,
        )
    )
    report.add()
    if slower:
        report.add("Optimised layers NOT faster than the full layer they replace: " + "; ".join(slower) + ".")
    else:
        report.add("Every optimised self-attention layer is faster than the full layer it replaces.")
    report.add()


def command_line(script: str, parser, args, skip=()) -> str:
    """The command that gives `args` back: `script` with each argument that differs from its default (switches
    without a value), except those named in `skip`, for a results file's "Command:" line."""
    changed = {k: v for k, v in vars(args).items() if k not in skip and parser.get_default(k) != v}
    return " ".join(
        [f"python benchmarks/{script}", *(f"--{k}" if v is True else f"--{k} {v}" for k, v in changed.items())]
    )


def machine_description(threads: int) -> str:
    import diffusers
    import torch

    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(l.split(":", 1)[1].strip() for l in f if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return (
        f"{cpu}, {os.cpu_count()} logical CPUs (shared with other tenants), torch {torch.__version__} "
        f"with {threads} threads, diffusers {diffusers.__version__}, Python {platform.python_version()}"
    )


# ---------------------------------------------------------------------------------------------------------
# Main


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--models",
        default="sd15,sd21",
        help="comma-separated SD versions among sd15, sd21 (default: both)",
    )
    parser.add_argument(
        "--dtypes",
        default="fp32,bf16",
        help="comma-separated dtypes among fp32, bf16 (default: both)",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=7,
        help="interleaved timing rounds per model and dtype (default: 7)",
    )
    parser.add_argument(
        "--min-clean-rounds",
        type=int,
        default=3,
        help=f"after --rounds, keep timing until this many rounds are clean (no call with a foreign CPU "
        f"load of {CLEAN_LOAD} or more) or --max-rounds is reached (default: 3)",
    )
    parser.add_argument(
        "--max-rounds",
        type=int,
        default=None,
        help="upper bound on rounds per model and dtype (default: 3 x --rounds)",
    )
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=0.0,
        help="before each round, wait up to this many seconds for a second in which other processes use "
        f"less than {CLEAN_LOAD} CPUs (default: 0, no waiting)",
    )
    parser.add_argument(
        "--warmup",
        type=int,
        default=1,
        help="untimed forward passes per model before timing (default: 1)",
    )
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default: 2)")
    parser.add_argument(
        "--memory_format",
        choices=("channels_last", "contiguous"),
        default="channels_last",
        help="layout of the latents timed: channels_last, as the pipeline runs the UNet on CPU, or contiguous "
        "(NCHW, the layout of the results before the pipeline adopted channels_last) (default: channels_last)",
    )
    parser.add_argument(
        "--skip-latency",
        action="store_true",
        help="only parameters and MACs (no timing)",
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=Path("benchmarks/results/unet_cpu.md"),
        help="markdown file to write (default: benchmarks/results/unet_cpu.md)",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace --output if it exists")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    args.models = _choices(parser, "--models", args.models, tuple(SD_UNET_CONFIGS))
    args.dtypes = _choices(parser, "--dtypes", args.dtypes, DTYPES)
    if args.rounds < 1:
        parser.error(f"--rounds must be at least 1, got {args.rounds}.")
    if args.max_rounds is None:
        args.max_rounds = 3 * args.rounds
    if args.max_rounds < args.rounds:
        parser.error(f"--max-rounds ({args.max_rounds}) must be at least --rounds ({args.rounds}).")
    if args.output.exists() and not args.overwrite:
        parser.error(f"{args.output} exists; pass --overwrite to replace it or choose another --output.")
    return args


def _choices(parser, flag: str, value: str, allowed: Sequence[str]) -> list[str]:
    chosen = [v.strip() for v in value.split(",") if v.strip()]
    bad = [v for v in chosen if v not in allowed]
    if bad or not chosen:
        parser.error(f"{flag} takes a comma-separated list of {allowed}; got {value!r}.")
    return chosen


def run_model(name: str, args: argparse.Namespace, report: Report, summary: list) -> None:
    import torch

    report.add(f"## {SD_NAMES[name]}")
    report.add()
    started = time.perf_counter()
    models = build_unets(name, seed=args.seed)
    print(f"[{name}] built in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    report_parameters(report, name, models)

    macs, shapes = {}, {}
    for kind, model in models.items():
        timer = ModuleTimer(model, self_attention_layer_names(model))
        macs[kind] = count_macs(model, *unet_inputs(model, torch.float32, seed=args.seed))
        shapes[kind] = timer.shapes
        timer.remove()
    report_macs(report, name, macs, shapes)
    summary_row = {"model": SD_NAMES[name], "macs": macs}

    if not args.skip_latency:
        timed = {k: block_names(m) + self_attention_layer_names(m) for k, m in models.items()}
        for dtype_name in args.dtypes:
            dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[dtype_name]
            for model in models.values():
                model.to(dtype)
            channels_last = args.memory_format == "channels_last"
            inputs = {k: unet_inputs(m, dtype, seed=args.seed, channels_last=channels_last) for k, m in models.items()}
            records, call_shapes = time_interleaved(
                models,
                inputs,
                args.rounds,
                args.warmup,
                timed,
                min_clean_rounds=args.min_clean_rounds,
                max_rounds=args.max_rounds,
                quiet_wait=args.quiet_wait,
                progress=f"{name} {dtype_name}",
            )
            ratios = report_latency(report, name, dtype_name, records, call_shapes, models)
            summary_row[dtype_name] = ratios
    summary.append(summary_row)
    del models
    gc.collect()


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    import torch
    from diffusers.utils import logging as diffusers_logging

    torch.set_num_threads(args.threads)
    # Casting to bf16 with `.to()` makes diffusers warn about an empty list of fp32 modules on every call.
    diffusers_logging.set_verbosity_error()
    report = Report()
    command = "python benchmarks/benchmark_unet.py " + " ".join(
        shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv)
    )
    report.add("# UNet cost on CPU: SD teacher, BK-SDM tiny, optimised student")
    report.add()
    report.add(f"Command: `{command.strip()}`")
    report.add()
    report.add(
        f"Run {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC on {machine_description(args.threads)}."
    )
    report.add(
        "Random weights, batch 1, 512x512 input (64x64 latent, 4 channels), 77 text tokens, "
        f"latents in {args.memory_format} layout, "
        "`torch.inference_mode()`, default attention processors (SDPA). Teacher: full SD UNet with the "
        "region head; tiny: BK-SDM tiny with the matte head; student: tiny with self-attention removed at "
        f"64x64 and K/V down-sampled by 2x2 at 32x32 and 16x16 (`self_attention_kv_downsample={STUDENT_KV_DOWNSAMPLE}`)."
    )
    report.add()
    summary: list[dict] = []
    for name in args.models:
        run_model(name, args, report, summary)

    report.add("## Summary")
    report.add()
    rows = []
    for row in summary:
        macs = row["macs"]
        cells = [row["model"], f"{macs['student'].total / macs['teacher'].total:.3f}"]
        for dtype in args.dtypes:
            ratios = row.get(dtype)
            cells.append(
                (f"{ratios['student']:.3f} (tiny {ratios['tiny']:.3f}; {ratios['basis']})" if ratios else "-")
            )
        rows.append(cells)
    report.add(
        md_table(
            (
                "teacher",
                "student / teacher GMACs",
                *(f"student / teacher latency, {d}" for d in args.dtypes),
            ),
            rows,
        )
    )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(report.text())
    print(f"Wrote {args.output}", file=sys.stderr)


if __name__ == "__main__":
    main()
