#!/usr/bin/env python
# Copyright 2026 The diffusers-matte authors. Licensed under the Apache License, Version 2.0.
"""Small-scale replication of the paper's framework ablation (its Table 3) on the synthetic set, on a CPU.

One command runs everything, from randomly initialised small networks (no download):

    python benchmarks/synthetic_ablation.py --work_dir outputs/ablation

1. a small Stable-Diffusion-shaped base model with random weights (VAE, CLIP text encoder, UNet) and the
   procedural synthetic referring-matting set;
2. the variants of the ablation, each through the project's own training scripts:
   (a) direct: the full UNet trained at once for soft grounding (alpha^lr + R), no localisation stage;
   (b) localisation (stage 1 teacher), then the pruned student fine-tuned without distillation;
   (c) the full framework: stage 1, then distillation with all five losses (eq. 9);
   each followed by stage 3 (the matting decoder);
3. evaluation on the synthetic test split (every instance with each of its four expressions) with the
   project's harness, plus the trivial all-zero baseline; the table goes to
   `benchmarks/results/synthetic_ablation.md`.

`--install_demo` copies the full framework's pipeline to `src/diffusers_matte/assets/demo_model/`, the
demonstration model that `diffusers-matte predict` uses by default. `--quick` shrinks everything for a smoke
test.
"""

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import torch
from synthetic_base_model import UNET, VAE, build_base_model

REPO = Path(__file__).resolve().parents[1]
TRAINING = REPO / "training"
DEMO_DIR = REPO / "src" / "diffusers_matte" / "assets" / "demo_model"
RESULTS = REPO / "benchmarks" / "results" / "synthetic_ablation.md"

# The recipe. Sizes are chosen so that the whole run fits in about an hour on 2 CPU cores.
FULL = dict(
    image_size=128,
    resolution=64,
    num_train=3000,
    num_test=60,
    batch_size=32,
    vae_steps=1000,
    teacher_steps=1800,
    student_steps=800,
    decoder_steps=500,
)
QUICK = dict(
    image_size=64,
    resolution=32,
    num_train=8,
    num_test=2,
    batch_size=4,
    vae_steps=2,
    teacher_steps=2,
    student_steps=2,
    decoder_steps=2,
)
# The paper's region-map erosion kernel is 15 px at 512 px; scaled to the training resolution (odd, at least 3).
KERNEL_AT_512 = 15
DECODER = dict(
    aligned_channels=32,
    convstream_channels=[16, 32, 48],
    fusion_channels=[64, 32, 16, 16],
    head_channels=8,
)


class Stages:
    """Runs the training scripts and keeps their wall times in `work/timings.json`. A stage whose output folder
    is complete (its model card is written last) is not run again, so an interrupted recipe resumes.
    """

    def __init__(self, work: Path):
        self.path = work / "timings.json"
        self.seconds = json.loads(self.path.read_text()) if self.path.exists() else {}

    def run(self, name: str, script: str, output_dir: Path, *args) -> Path:
        if (output_dir / "README.md").exists() and name in self.seconds:
            print(f"{name}: done already ({output_dir})", flush=True)
            return output_dir
        command = [
            sys.executable,
            str(TRAINING / f"{script}.py"),
            *map(str, args),
            "--output_dir",
            str(output_dir),
        ]
        print("$", " ".join(command[1:]), flush=True)
        start = time.perf_counter()
        with (output_dir.parent / f"{output_dir.name}.log").open("w") as out:
            subprocess.run(command, check=True, stdout=out, stderr=subprocess.STDOUT)
        self.record(name, start)
        return output_dir

    def record(self, name: str, start: float) -> None:
        self.seconds[name] = time.perf_counter() - start
        self.path.write_text(json.dumps(self.seconds, indent=1))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work_dir", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--quick",
        action="store_true",
        help="tiny sizes: a smoke test of the whole recipe",
    )
    parser.add_argument(
        "--install_demo", action="store_true", help=f"copy variant (c) to {DEMO_DIR}"
    )
    parser.add_argument("--results", type=Path, default=RESULTS)
    # Every size can be overridden, e.g. a longer stage 1 where a GPU is at hand: --teacher_steps 30000
    for key in FULL:
        parser.add_argument(
            f"--{key}", type=int, default=None, help=f"default {FULL[key]}"
        )
    args = parser.parse_args(argv)
    sizes = dict(QUICK if args.quick else FULL)
    sizes.update({k: getattr(args, k) for k in FULL if getattr(args, k) is not None})
    work = args.work_dir
    work.mkdir(parents=True, exist_ok=True)
    check_recipe(work / "recipe.json", sizes)

    base, data = work / "base", work / "data"
    stages = Stages(work)
    start = time.perf_counter()
    if not data.exists():
        from diffusers_matte.data.synthetic import load_synthetic_matting

        load_synthetic_matting(
            sizes["num_train"], sizes["num_test"], args.seed, sizes["image_size"]
        ).save_to_disk(str(data))
    if not (base / "unet").exists():
        import datasets

        rows = datasets.load_from_disk(str(data))["train"]
        build_base_model(base, rows, args.seed, sizes["vae_steps"])
        stages.record("data and base model (VAE pretraining)", start)

    common = [
        "--pretrained_model_name_or_path", base, "--dataset", data, "--resolution", sizes["resolution"],
        "--train_batch_size", sizes["batch_size"], "--report_to", "none", "--seed", args.seed, "--checkpointing_steps", 10**9,
    ]  # fmt: skip
    kernel = max(3, round(KERNEL_AT_512 * sizes["resolution"] / 512) | 1)
    common += ["--morphology_kernel_size", kernel]
    decoder_config = work / "decoder.json"
    decoder_config.write_text(json.dumps(DECODER))
    # Table 4's milestones, scaled to runs this short, cut the learning rate after 20% of the steps: plain poly-0.9.
    no_milestones = ["--lr_milestones", "--lr_milestone_values"]
    stage1 = stages.run("stage 1: teacher", "train_teacher", work / "teacher", *common,
                        "--max_train_steps", sizes["teacher_steps"], "--learning_rate", 1e-3, *no_milestones)  # fmt: skip
    student_args = [
        "--max_train_steps",
        sizes["student_steps"],
        "--learning_rate",
        5e-4,
        *no_milestones,
    ]
    variants = {
        "(a) direct soft grounding, full UNet": ["--teacher_model_name_or_path", base_as_teacher(base, stage1, work),
                                                 "--student_variant", "none", "--kv_downsample", 1, 1, 1, 1,
                                                 "--no_distillation", "--train_text_adapter"],
        "(b) localisation, then fine-tune the small student": ["--teacher_model_name_or_path", stage1, "--no_distillation"],
        "(c) full framework (distillation, eq. 9)": ["--teacher_model_name_or_path", stage1],
    }  # fmt: skip
    pipelines = {}
    # (c) first: it is the demonstration model, and an interrupted run resumes where it stopped
    for key, (name, extra) in reversed(list(zip("abc", variants.items()))):
        student = stages.run(f"{name}: stage 2", "train_distill", work / f"student_{key}", *common, *student_args,
                             *extra)  # fmt: skip
        pipelines[name] = stages.run(f"{name}: stage 3", "train_matting_decoder", work / f"pipeline_{key}", *common,
                                     "--student_model_name_or_path", student, "--max_train_steps",
                                     sizes["decoder_steps"], "--learning_rate", 1e-3, *no_milestones,
                                     "--decoder_config", decoder_config)  # fmt: skip
    pipelines = {
        name: pipelines[name] for name in variants
    }  # the table in the order a, b, c
    table = evaluate(pipelines, data, work)
    probes = probe_grounding(base, stage1, pipelines, data, sizes["resolution"])
    write_results(args, sizes, table, probes, stages.seconds)
    if args.install_demo:
        if DEMO_DIR.exists():
            shutil.rmtree(DEMO_DIR)
        shutil.copytree(pipelines["(c) full framework (distillation, eq. 9)"], DEMO_DIR,
                        ignore=shutil.ignore_patterns("checkpoint-*", "logs", "*.jsonl"))  # fmt: skip
        print(f"installed the demonstration model in {DEMO_DIR}")


def check_recipe(path: Path, sizes: dict) -> None:
    """Stages resume from a work folder: refuse one that was made with other sizes rather than mix two recipes."""
    if path.exists():
        made_with = json.loads(path.read_text())
        if made_with != sizes:
            changed = {
                k: (made_with.get(k), v)
                for k, v in sizes.items()
                if made_with.get(k) != v
            }
            raise SystemExit(
                f"{path.parent} was made with another recipe ({changed}, as (was, now)); use a new --work_dir."
            )
    else:
        path.write_text(json.dumps(sizes, indent=1))


def base_as_teacher(base: Path, stage1: Path, work: Path) -> Path:
    """Variant (a) starts from the base UNet itself (no localisation stage); the text adapter is fresh."""
    folder = work / "base_as_teacher"
    if not folder.exists():
        from diffusers_matte.models.text_adapter import TextAdapter
        from diffusers_matte.models.unet_matte import MatteUNet2DConditionModel

        MatteUNet2DConditionModel.from_pretrained(
            base, subfolder="unet"
        ).save_pretrained(folder / "unet")
        adapter = TextAdapter.from_pretrained(stage1, subfolder="text_adapter")
        torch.manual_seed(0)
        TextAdapter(**adapter.config).save_pretrained(folder / "text_adapter")
    return folder


def evaluate(pipelines: dict, data: Path, work: Path) -> dict:
    """Mean metrics of each variant (and the all-zero baseline) on the synthetic test split, every expression."""
    import datasets

    from diffusers_matte import SoftGroundingMattingPipeline
    from diffusers_matte.evaluation import (
        constant_predictor,
        evaluate,
        pipeline_predictor,
    )

    test = datasets.load_from_disk(str(data))["test"]
    predictors = {"trivial baseline: all-zero alpha": constant_predictor(0.0)}
    for name, folder in pipelines.items():
        predictors[name] = pipeline_predictor(
            SoftGroundingMattingPipeline.from_pretrained(folder)
        )
    table = {}
    for index, (name, predict) in enumerate(predictors.items()):
        result = evaluate(
            predict,
            test,
            "synthetic",
            work / f"eval_{index}",
            batch_size=4,
            overwrite=True,
        )
        table[name] = result.summary
    return table


def probe_grounding(
    base: Path, teacher: Path, pipelines: dict, data: Path, resolution: int
) -> dict:
    """`grounding_probe` of the stage-1 teacher and of each variant's coarse and final alpha."""
    import datasets

    import grounding_probe
    from diffusers_matte import SoftGroundingMattingPipeline

    test = datasets.load_from_disk(str(data))["test"]
    predictors = {
        "stage 1 teacher": grounding_probe.teacher_predictor(base, teacher, resolution)
    }
    for name, folder in pipelines.items():
        pipe = SoftGroundingMattingPipeline.from_pretrained(folder)
        predictors[name] = grounding_probe.pipeline_predictor(pipe)
    return {
        (name, output): means
        for name, predict in predictors.items()
        for output, means in grounding_probe.probe(test, predict).items()
    }


def device_description() -> str:
    """Where the training scripts ran: accelerate picks the GPU when there is one."""
    if torch.cuda.is_available():
        return f"Trained on {torch.cuda.get_device_name()}"
    return f"CPU only ({torch.get_num_threads()} threads)"


def write_results(args, sizes: dict, table: dict, probes: dict, seconds: dict) -> None:
    columns = ["sad", "mse", "grad", "conn"]
    types = ["keyword", "basic", "absolute", "relative"]
    overrides = "".join(
        f" --{k} {getattr(args, k)}" for k in FULL if getattr(args, k) is not None
    )
    command = (
        "python benchmarks/synthetic_ablation.py --work_dir "
        + str(args.work_dir)
        + (" --quick" if args.quick else "")
        + overrides
        + ("" if args.results == RESULTS else f" --results {args.results}")
        + (" --install_demo" if args.install_demo else "")
    )
    first = next(iter(table.values()))
    lines = [
        "# Small-scale replication of the framework ablation (paper Table 3) on the synthetic set",
        "",
        f"Command: `{command}`",
        "",
        f"{device_description()}, no Stable Diffusion or CLIP weights (see "
        "`benchmarks/synthetic_base_model.py`): a small SD-shaped UNet "
        f"{UNET['block_out_channels']} and a 2-layer CLIP text encoder, both randomly initialised, a VAE "
        f"{VAE['block_out_channels']} pretrained as an autoencoder for {sizes['vae_steps']} steps and a tokenizer "
        f"learned on the training expressions; {sizes['num_train']} training images of {sizes['image_size']} px "
        f"trained at {sizes['resolution']} px, batch {sizes['batch_size']}; stage 1 {sizes['teacher_steps']} steps, stage 2 "
        f"{sizes['student_steps']} steps, stage 3 {sizes['decoder_steps']} steps. Test split: "
        f"{first['num_instances']} instances x 4 expressions = {first['num_samples']} samples, predicted at "
        f"{sizes['resolution']} px and compared at native resolution on the "
        "whole image. Units: SAD, GRAD, CONN / 1000 as DIM `evaluate.m`; MSE raw.",
        "",
        "| variant | "
        + " | ".join(c.upper() for c in columns)
        + " | "
        + " | ".join(f"SAD {t}" for t in types)
        + " |",
        "|---|" + "---|" * (len(columns) + len(types)),
    ]
    for name, summary in table.items():
        mean, per_type = summary["mean"], summary["per_text_type"]
        cells = [f"{mean[c]:.4f}" if c == "mse" else f"{mean[c]:.3f}" for c in columns]
        cells += [f"{per_type[t]['sad']:.3f}" if t in per_type else "-" for t in types]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Grounding probe (`benchmarks/grounding_probe.py`): mean prediction over the referred instance, over the "
        "image's other instances and over the background, averaged over every (instance, expression) pair of the "
        "test split; grounding shows as referred >> others. Last column: the prediction scored as if it were the "
        "alpha matte (SAD, as the table above; for the teacher's P(foreground), what distilling it can give at "
        "best without the decoder's help).",
        "",
        "| model | prediction | referred | others | background | SAD as alpha |",
        "|---|---|---|---|---|---|",
    ]
    for (name, output), means in probes.items():
        cells = " | ".join(
            f"{means[part]:.3f}" for part in ("referred", "others", "background", "sad")
        )
        lines.append(f"| {name} | {output} | {cells} |")
    lines += [
        "",
        "Training wall time (this machine, shared with other work while it ran):",
        "",
    ]
    lines += [f"- {stage}: {value / 60:.1f} min" for stage, value in seconds.items()]
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
