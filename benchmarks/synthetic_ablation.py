#!/usr/bin/env python
# Copyright 2026 The diffusers-matte authors. Licensed under the Apache License, Version 2.0.
"""Small-scale replication of the paper's framework ablation (its Table 3) on the synthetic set, on a CPU.

One command runs everything, from nothing downloaded:

    python benchmarks/synthetic_ablation.py --work_dir outputs/ablation --install_demo

1. the procedural synthetic referring-matting set, in a layout whose objects the latent grid can resolve
   (`LAYOUT`: 2-3 large instances, at least 80% of each visible, a third of them see-through or thin), and the
   small Stable Diffusion stand-in of `synthetic_base_model.py` pretrained on its training split (a CLIP text
   encoder trained contrastively, a UNet trained as a text-to-image latent diffusion model, a VAE), plus the same
   base with a random UNet;
2. the variants of the ablation, each through the project's own training scripts:
   (a) direct: the full UNet trained at once for soft grounding (alpha^lr + R), no localisation stage;
   (b) localisation (stage 1 teacher), then the pruned student fine-tuned without distillation;
   (c) the full framework: stage 1, then distillation with all five losses (eq. 9);
   (d) (c) from the base whose UNet had no text-to-image pretraining: the paper's premise, at small scale;
   each followed by stage 3 (the matting decoder);
3. evaluation on the synthetic test split (every instance with each of its four expressions) with the
   project's harness, plus the all-zero alpha; 95% bootstrap intervals over test instances, paired differences
   between variants, the grounding probe, the "perfect latent-grid alpha" ceiling and the area distribution of
   the referred instances; the table goes to `benchmarks/results/synthetic_ablation.md`.

`--install_demo` copies variant (c)'s pipeline to `src/diffusers_matte/assets/demo_model/`, the demonstration
model that `diffusers-matte predict` uses by default. `--quick` shrinks everything for a smoke test.
"""

import argparse
import dataclasses
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import torch
from synthetic_base_model import (
    TEXT,
    UNET,
    VAE,
    build_base_model,
    caption_use,
    without_diffusion_pretraining,
)

from diffusers_matte.data.synthetic import REPLICATION_LAYOUT

REPO = Path(__file__).resolve().parents[1]
TRAINING = REPO / "training"
DEMO_DIR = REPO / "src" / "diffusers_matte" / "assets" / "demo_model"
RESULTS = REPO / "benchmarks" / "results" / "synthetic_ablation.md"

# The recipe. Sizes are chosen so that base pretraining and the ablation each fit in 90 minutes on 2 CPU cores.
FULL = dict(
    image_size=64,
    resolution=64,
    num_train=3000,
    num_test=100,
    batch_size=32,
    vae_steps=1000,
    clip_steps=1500,
    unet_steps=4000,
    teacher_steps=3000,
    student_steps=600,
    decoder_steps=400,
)
QUICK = dict(
    image_size=64,
    resolution=32,
    num_train=8,
    num_test=2,
    batch_size=4,
    vae_steps=2,
    clip_steps=2,
    unet_steps=2,
    teacher_steps=2,
    student_steps=2,
    decoder_steps=2,
)
LAYOUT = REPLICATION_LAYOUT
# The paper's region-map erosion kernel is 15 px at 512 px; scaled to the training resolution (odd, at least 3).
KERNEL_AT_512 = 15
DECODER = dict(
    aligned_channels=32,
    convstream_channels=[16, 32, 48],
    fusion_channels=[64, 32, 16, 16],
    head_channels=8,
)
BASELINE = "trivial baseline: all-zero alpha"
VARIANTS = {
    "a": "(a) direct soft grounding, full UNet",
    "b": "(b) localisation, then fine-tune the small student",
    "c": "(c) full framework (distillation, eq. 9)",
    "d": "(d) = (c) without text-to-image pretraining of the UNet",
}


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
        self.add(name, time.perf_counter() - start)

    def add(self, name: str, seconds: float) -> None:
        self.seconds[name] = seconds
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
    parser.add_argument("--install_demo", action="store_true", help=f"copy variant (c) to {DEMO_DIR}")
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument(
        "--no_target_share",
        type=float,
        default=0.0,
        help="share of images that also get a text naming nothing in them, in training and test (all-zero alpha); "
        "the results then report the grounding score's AUROC",
    )
    parser.add_argument(
        "--variants",
        default="abcd",
        help="which rows to train and report, e.g. 'c' for the full framework alone (default: abcd)",
    )
    # Every size can be overridden, e.g. a longer stage 1 where a GPU is at hand: --teacher_steps 30000
    for key in FULL:
        parser.add_argument(f"--{key}", type=int, default=None, help=f"default {FULL[key]}")
    args = parser.parse_args(argv)
    if not args.variants or set(args.variants) - set(VARIANTS):
        parser.error(f"--variants: expected letters among {''.join(VARIANTS)}, got {args.variants!r}")
    if args.install_demo and "c" not in args.variants:
        parser.error("--install_demo installs variant (c): add c to --variants")
    sizes = dict(QUICK if args.quick else FULL)
    sizes.update({k: getattr(args, k) for k in FULL if getattr(args, k) is not None})
    work = args.work_dir
    work.mkdir(parents=True, exist_ok=True)
    # the layout's fields that differ from SceneLayout's defaults: work folders made before a field existed resume
    layout = {
        f.name: getattr(LAYOUT, f.name) for f in dataclasses.fields(LAYOUT) if getattr(LAYOUT, f.name) != f.default
    }
    recipe = {**sizes, "layout": layout, "unet": UNET}
    if args.no_target_share:  # only then, so that the work folders of earlier recipes still resume
        recipe["no_target_share"] = args.no_target_share
    check_recipe(work / "recipe.json", recipe)

    stages = Stages(work)
    data, base, base_d = prepare_data_and_bases(work, sizes, args.seed, stages, args.no_target_share)
    common = stage_arguments(data, sizes, args.seed)
    decoder_config = work / "decoder.json"
    decoder_config.write_text(json.dumps(DECODER))
    teacher_args = teacher_arguments(sizes["teacher_steps"])
    teachers = {"": work / "teacher", "d": work / "teacher_d"}

    def stage1(
        key: str,
    ) -> Path:  # run when first needed: (c), the demonstration model, is ready first
        stages.run(
            "stage 1: teacher" + (" without text-to-image pretraining" if key else ""),
            "train_teacher",
            teachers[key],
            "--pretrained_model_name_or_path",
            base_d if key else base,
            *common,
            *teacher_args,
        )
        return teachers[key]  # fmt: skip

    student_args = [
        "--max_train_steps",
        sizes["student_steps"],
        "--learning_rate",
        5e-4,
        *NO_MILESTONES,
    ]
    variants = {
        "a": (base, lambda: ["--teacher_model_name_or_path", base_as_teacher(base, stage1(""), work),
                             "--student_variant", "none", "--kv_downsample", 1, 1, 1, 1, "--no_distillation",
                             "--train_text_adapter"]),
        "b": (base, lambda: ["--teacher_model_name_or_path", stage1(""), "--no_distillation"]),
        "c": (base, lambda: ["--teacher_model_name_or_path", stage1("")]),
        "d": (base_d, lambda: ["--teacher_model_name_or_path", stage1("d")]),
    }  # fmt: skip
    pipelines = {}
    # (c) first: it is the demonstration model, and an interrupted run resumes where it stopped
    for key in sorted(args.variants, key="cbad".index):
        variant_base, extra = variants[key]
        name = VARIANTS[key]
        pretrained = ["--pretrained_model_name_or_path", variant_base]
        student = stages.run(f"{name}: stage 2", "train_distill", work / f"student_{key}", *pretrained, *common,
                             *student_args, *extra())  # fmt: skip
        pipelines[name] = stages.run(f"{name}: stage 3", "train_matting_decoder", work / f"pipeline_{key}",
                                     *pretrained, *common, "--student_model_name_or_path", student,
                                     "--max_train_steps", sizes["decoder_steps"], "--learning_rate", 1e-3,
                                     *NO_MILESTONES, "--decoder_config", decoder_config)  # fmt: skip
    pipelines = {VARIANTS[k]: pipelines[VARIANTS[k]] for k in "abcd" if k in args.variants}
    table, samples = evaluate(pipelines, data, work)
    teacher_probes = {
        "stage 1 teacher": (base, teachers[""]),
        "stage 1 teacher without text-to-image pretraining": (base_d, teachers["d"]),
    }
    teacher_probes = {name: paths for name, paths in teacher_probes.items() if paths[1].exists()}
    probes = probe_grounding(teacher_probes, pipelines, data, sizes["resolution"])
    benchmark = describe_benchmark(data, sizes["resolution"], base)
    write_results(args, sizes, table, samples, probes, benchmark, stages.seconds)
    if args.install_demo:
        install_demo(pipelines[VARIANTS["c"]], args, table, probes)


# Table 4's milestones, scaled to runs this short, cut the learning rate after 20% of the steps: plain poly-0.9.
NO_MILESTONES = ["--lr_milestones", "--lr_milestone_values"]
TEACHER_LEARNING_RATE = 1e-3


def stage_arguments(data: Path, sizes: dict, seed: int) -> list:
    """The arguments every stage script gets in this recipe: the data, sizes, caching, checkpoints and kernel."""
    kernel = max(3, round(KERNEL_AT_512 * sizes["resolution"] / 512) | 1)
    return [
        "--dataset", data, "--resolution", sizes["resolution"], "--train_batch_size", sizes["batch_size"],
        "--report_to", "none", "--seed", seed, "--cache_latents",
        # a stage killed half-way resumes from its last checkpoint when the recipe is run again
        "--checkpointing_steps", 500, "--checkpoints_total_limit", 1, "--resume_from_checkpoint", "latest",
        "--morphology_kernel_size", kernel,
    ]  # fmt: skip


def teacher_arguments(steps: int, learning_rate: float = TEACHER_LEARNING_RATE) -> list:
    """Stage 1's own arguments in this recipe."""
    return ["--max_train_steps", steps, "--learning_rate", learning_rate, *NO_MILESTONES]


def install_demo(pipeline: Path, args, table: dict, probes: dict) -> None:
    """Copies variant (c) to `DEMO_DIR` with a model card that quotes its results."""
    if DEMO_DIR.exists():
        shutil.rmtree(DEMO_DIR)
    shutil.copytree(
        pipeline,
        DEMO_DIR,
        ignore=shutil.ignore_patterns("checkpoint-*", "logs", "*.jsonl"),
    )
    c, empty = table[VARIANTS["c"]]["mean"], table[BASELINE]["mean"]
    probe = probes[(VARIANTS["c"], "alpha")]
    try:
        results = args.results.resolve().relative_to(REPO)
    except ValueError:
        results = args.results
    card = f"""---
license: apache-2.0
library_name: diffusers
pipeline_tag: image-segmentation
tags:
- diffusers-matte
- image-matting
- text-guided-matting
---

# diffusers-matte demonstration model (synthetic data only)

A few-MB `SoftGroundingMattingPipeline` trained on CPU by this repository's own scripts, variant (c) (the full
framework: stage 1 teacher, distillation with eq. 9, matting decoder) of `{results}`, made by

    {_command(args)}

from a small Stable Diffusion stand-in pretrained offline on the same procedural data
(`benchmarks/synthetic_base_model.py`). It knows the synthetic scenes only: toy shapes, glass, bubbles, smoke,
veils, fur, tassels, dandelions and nets, 2-3 per 64 px image. It knows nothing of real photos.

On the synthetic test split ({_target_samples(table[BASELINE])} image-expression pairs): SAD {c['sad']:.3f} against
{empty['sad']:.3f} for an empty matte ({c['sad'] / empty['sad']:.2f}x), MSE {c['mse']:.4f} against {empty['mse']:.4f}
({c['mse'] / empty['mse']:.2f}x); its alpha averages {probe['referred']:.3f} on the object the sentence names and
{probe['others']:.3f} on the image's other objects. See the results file for intervals, the other variants and the
per-expression-kind errors.

```python
from diffusers_matte import SoftGroundingMattingPipeline
from diffusers_matte.cli import DEMO_MODEL_DIR

pipe = SoftGroundingMattingPipeline.from_pretrained(DEMO_MODEL_DIR)
alpha = pipe(image, prompt="the red ball on the left", output_type="pil").alpha[0]
```

Limitations: trained and predicted at 64 px (`default_processing_resolution`): larger images are matted at that
size and up-sampled, so fine strands come out soft. Expressions outside the synthetic vocabulary are read as the
nearest words it knows, or not at all.

{_score_limits(args.no_target_share)}
"""
    (DEMO_DIR / "README.md").write_text(card)
    print(f"installed the demonstration model in {DEMO_DIR}")


def _score_limits(no_target_share: float) -> str:
    """The card's word on `grounding_score`, which only a model trained on texts that name nothing can use."""
    if not no_target_share:
        return (
            "Its `grounding_score` cannot tell a prompt that names nothing: trained without such prompts, the model\n"
            "grounds every prompt somewhere and scores it almost as high as a named object\n"
            "(`benchmarks/results/end_to_end_finetune_synthetic.md`)."
        )
    return (
        f"Trained with a share of {no_target_share:g} of images also given a text that names nothing in them; its\n"
        "`grounding_score` is a confidence, not a calibrated probability: choose a threshold on held-out prompts."
    )


def prepare_data_and_bases(work: Path, sizes: dict, seed: int, stages: "Stages", no_target_share: float = 0.0):
    """The synthetic set, the pretrained base and the base without text-to-image pretraining (each made once)."""
    import datasets

    from diffusers_matte.data.synthetic import load_synthetic_matting

    data, base, base_d = work / "data", work / "base", work / "base_no_diffusion"
    if not data.exists():
        start = time.perf_counter()
        load_synthetic_matting(
            sizes["num_train"],
            sizes["num_test"],
            seed,
            sizes["image_size"],
            layout=LAYOUT,
            no_target_share=no_target_share,
        ).save_to_disk(str(data))
        stages.record("data", start)
    if not (base / "model_index.json").exists():
        rows = _with_target(datasets.load_from_disk(str(data))["train"])
        steps = {k: sizes[k] for k in ("vae_steps", "clip_steps", "unet_steps")}
        seconds = build_base_model(base, rows, seed, batch_size=sizes["batch_size"], **steps)
        for component, value in seconds.items():
            stages.add(f"base model: {component}", value)
    without_diffusion_pretraining(base, base_d, seed)
    return data, base, base_d


def _with_target(rows):
    """The rows whose texts name an instance (all of them without `--no_target_share`)."""
    from diffusers_matte.data.common import has_target_flags

    flags = has_target_flags(rows)
    return rows if all(flags) else rows.select([index for index, flag in enumerate(flags) if flag])


def check_recipe(path: Path, sizes: dict) -> None:
    """Stages resume from a work folder: refuse one that was made with other sizes rather than mix two recipes."""
    sizes = json.loads(json.dumps(sizes))  # as the file reads back (tuples become lists)
    if path.exists():
        made_with = json.loads(path.read_text())
        if made_with != sizes:
            changed = {k: (made_with.get(k), v) for k, v in sizes.items() if made_with.get(k) != v}
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

        MatteUNet2DConditionModel.from_pretrained(base, subfolder="unet").save_pretrained(folder / "unet")
        adapter = TextAdapter.from_pretrained(stage1, subfolder="text_adapter")
        torch.manual_seed(0)
        TextAdapter(**adapter.config).save_pretrained(folder / "text_adapter")
    return folder


def evaluate(pipelines: dict, data: Path, work: Path) -> tuple[dict, dict]:
    """Mean metrics of each variant (and the all-zero baseline) on the synthetic test split, every expression, and
    each one's per-sample rows (for the intervals)."""
    import datasets

    from diffusers_matte import SoftGroundingMattingPipeline
    from diffusers_matte.evaluation import (
        SAMPLES_FILE,
        constant_predictor,
        evaluate,
        pipeline_predictor,
        read_samples_csv,
    )

    test = datasets.load_from_disk(str(data))["test"]
    predictors = {BASELINE: constant_predictor(0.0)}
    for name, folder in pipelines.items():
        predictors[name] = pipeline_predictor(SoftGroundingMattingPipeline.from_pretrained(folder))
    table, samples = {}, {}
    for index, (name, predict) in enumerate(predictors.items()):
        out = work / f"eval_{index}"
        result = evaluate(predict, test, "synthetic", out, batch_size=4, overwrite=True)
        table[name] = result.summary
        # the intervals and paired differences are over the rows with a target, as the harness's means
        samples[name] = [row for row in read_samples_csv(out / SAMPLES_FILE) if row.get("has_target", True)]
    return table, samples


def probe_grounding(teachers: dict, pipelines: dict, data: Path, resolution: int) -> dict:
    """`grounding_probe` of each stage-1 teacher (`{name: (base, teacher)}`) and of each variant's coarse and
    final alpha."""
    import datasets
    import grounding_probe

    from diffusers_matte import SoftGroundingMattingPipeline

    test = _with_target(datasets.load_from_disk(str(data))["test"])
    predictors = {
        name: grounding_probe.teacher_predictor(base, teacher, resolution)
        for name, (base, teacher) in teachers.items()
    }
    for name, folder in pipelines.items():
        pipe = SoftGroundingMattingPipeline.from_pretrained(folder)
        predictors[name] = grounding_probe.pipeline_predictor(pipe)
    return {
        (name, output): means
        for name, predict in predictors.items()
        for output, means in grounding_probe.probe(test, predict).items()
    }


def describe_benchmark(data: Path, resolution: int, base: Path) -> dict:
    """What the latent grid can resolve on the test split: the referred instances' area shares and the SAD of a
    perfect alpha on the latent grid, up-sampled, against the empty matte's."""
    import datasets
    import numpy as np
    from ablation_statistics import area_distribution, latent_grid_ceiling
    from diffusers import AutoencoderKL

    test = _with_target(datasets.load_from_disk(str(data))["test"])
    alphas = [np.asarray(a, dtype=np.float32) / 255.0 for a in test["alpha"]]
    vae_config = AutoencoderKL.load_config(base, subfolder="vae")
    latent_factor = 2 ** (len(vae_config["block_out_channels"]) - 1)
    scheduler = json.loads((base / "scheduler" / "scheduler_config.json").read_text())
    return {
        "area": area_distribution(alphas),
        "ceiling": latent_grid_ceiling(alphas, resolution, latent_factor),
        "latent_grid": resolution // latent_factor,
        "prediction_type": scheduler["prediction_type"],
        "caption_use": caption_use(base, test),
    }


def device_description() -> str:
    """Where the training scripts ran: accelerate picks the GPU when there is one."""
    if torch.cuda.is_available():
        return f"Trained on {torch.cuda.get_device_name()}"
    return f"CPU only ({torch.get_num_threads()} threads)"


def _command(args) -> str:
    overrides = "".join(f" --{k} {getattr(args, k)}" for k in FULL if getattr(args, k) is not None)
    return (
        "python benchmarks/synthetic_ablation.py --work_dir "
        + str(args.work_dir)
        + (" --quick" if args.quick else "")
        + overrides
        + ("" if args.variants == "abcd" else f" --variants {args.variants}")
        + ("" if args.results == RESULTS else f" --results {args.results}")
        + (f" --no_target_share {args.no_target_share:g}" if args.no_target_share else "")
        + (" --install_demo" if args.install_demo else "")
    )


def _recipe_lines(args, sizes: dict, table: dict, benchmark: dict) -> list[str]:
    first = next(iter(table.values()))
    area, ceiling = benchmark["area"], benchmark["ceiling"]
    return [
        "# Small-scale replication of the framework ablation (paper Table 3) on the synthetic set",
        "",
        f"Command: `{_command(args)}`",
        "",
        f"{device_description()}. No Stable Diffusion or CLIP weights: the stand-in of "
        "`benchmarks/synthetic_base_model.py`, pretrained here on the training split: a tokenizer learned on the "
        f"expressions and their ordinary variants; a VAE {VAE['block_out_channels']} trained as an autoencoder "
        f"({sizes['vae_steps']} steps); a {TEXT['num_hidden_layers']}-layer CLIP text encoder (width "
        f"{TEXT['hidden_size']}) trained contrastively with a ViT on (instance, expression) pairs "
        f"({sizes['clip_steps']} steps), then frozen; an SD-shaped UNet {UNET['block_out_channels']} "
        f"({UNET['layers_per_block']} layer(s) per block) trained as a "
        f"text-to-image latent diffusion model ({sizes['unet_steps']} steps, DDPM {benchmark['prediction_type']} loss). "
        f"{sizes['num_train']} training images of {sizes['image_size']} px (layout: {LAYOUT}) trained at "
        f"{sizes['resolution']} px, batch {sizes['batch_size']}; stage 1 {sizes['teacher_steps']} steps, stage 2 "
        f"{sizes['student_steps']} steps, stage 3 {sizes['decoder_steps']} steps. Test split: "
        f"{first['num_instances']} instances x 4 expressions = {_target_samples(first)} samples{_no_target_note(first)}, "
        "predicted at "
        f"{sizes['resolution']} px and compared at native resolution on the whole image. Units: SAD, GRAD, CONN "
        "/ 1000 as DIM `evaluate.m`; MSE raw.",
        "",
        f"What the latent grid ({benchmark['latent_grid']}x{benchmark['latent_grid']}) can resolve: the referred "
        f"instances cover {area['mean']:.1%} of the image on average (10th / 50th / 90th percentile "
        f"{area['p10']:.1%} / {area['p50']:.1%} / {area['p90']:.1%}); a perfect alpha on the latent grid, "
        f"up-sampled as the pipeline does, scores SAD {ceiling['ceiling_sad']:.3f} against "
        f"{ceiling['empty_sad']:.3f} for the empty matte (ratio {ceiling['ratio']:.2f}).",
        "",
        *_caption_use_lines(benchmark["caption_use"]),
    ]


def _caption_use_lines(use: dict) -> list[str]:
    """Whether the pretrained UNet reads its caption (`synthetic_base_model.caption_use`)."""
    cells = [f"t = {t}: {e['own']:.3f} / {e['other']:.3f}" for t, e in use.items()]
    return [
        "Does the pretrained UNet read its caption? Error of its clean-latent estimate on the test images with "
        "each image's own caption / another image's (lower is better; level means the caption is ignored): "
        + "; ".join(cells)
        + ".",
        "",
    ]


def _target_samples(summary: dict) -> int:
    grounding = summary.get("grounding")
    return grounding["target_samples"] if grounding else summary["num_samples"]


def _no_target_note(summary: dict) -> str:
    grounding = summary.get("grounding")
    return f" (plus {grounding['no_target_samples']} whose text names nothing)" if grounding else ""


def _table_lines(table: dict, samples: dict) -> list[str]:
    from ablation_statistics import format_interval, summarize_samples

    from diffusers_matte.data.synthetic import TEXT_TYPES

    columns = ["sad", "mse", "grad", "conn"]
    empty = table[BASELINE]["mean"]
    lines = [
        "Means over the test samples, with 95% bootstrap intervals over test instances (2000 resamples); "
        "the last two columns: SAD and MSE as a share of the empty matte's.",
        "",
        "| variant | SAD | MSE | GRAD | CONN | SAD / empty | MSE / empty |",
        "|---|---|---|---|---|---|---|",
    ]
    per_kind = []
    for name, summary in table.items():
        stats = summarize_samples(samples[name])
        cells = [format_interval(*stats["all"][c], digits=4 if c == "mse" else 3) for c in columns]
        mean = summary["mean"]
        cells += [
            f"{mean['sad'] / empty['sad']:.2f}",
            f"{mean['mse'] / empty['mse']:.2f}",
        ]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
        kinds = stats["per_text_type"]
        per_kind.append(
            f"| {name} | "
            + " | ".join(format_interval(*kinds[t]["sad"]) if t in kinds else "-" for t in TEXT_TYPES)
            + " |"
        )
    lines += [
        "",
        "SAD per expression kind (95% intervals over instances):",
        "",
        "| variant | " + " | ".join(TEXT_TYPES) + " |",
        "|---|" + "---|" * len(TEXT_TYPES),
        *per_kind,
    ]
    return lines


def _paired_lines(samples: dict) -> list[str]:
    """Differences that the intervals of two rows cannot settle: paired over the same samples."""
    from ablation_statistics import format_interval, paired_difference

    labels = {VARIANTS[k]: f"({k})" for k in VARIANTS} | {BASELINE: "empty matte"}
    c = VARIANTS["c"]
    pairs = [(c, VARIANTS["a"]), (c, VARIANTS["b"]), (c, VARIANTS["d"]), (c, BASELINE)]
    pairs = [(first, second) for first, second in pairs if first in samples and second in samples]
    lines = [
        "",
        "Paired SAD differences (first minus second, over the same samples; 95% bootstrap interval over "
        "instances; below zero: the first is better):",
        "",
        "| comparison | SAD difference |",
        "|---|---|",
    ]
    for first, second in pairs:
        diff = paired_difference(samples[first], samples[second])
        lines.append(f"| {labels[first]} - {labels[second]} | {format_interval(*diff)} |")
    return lines


def _probe_lines(probes: dict) -> list[str]:
    lines = [
        "",
        "Grounding probe (`benchmarks/grounding_probe.py`): mean prediction over the referred instance, over the "
        "image's other instances and over the background, averaged over every (instance, expression) pair of the "
        "test split; grounding shows as referred >> others. Last columns: referred / others, and the prediction "
        "scored as if it were the alpha matte (SAD, as the table above).",
        "",
        "| model | prediction | referred | others | background | referred / others | SAD as alpha |",
        "|---|---|---|---|---|---|---|",
    ]
    for (name, output), means in probes.items():
        ratio = means["referred"] / max(means["others"], 1e-9)
        cells = [f"{means[part]:.3f}" for part in ("referred", "others", "background")]
        cells += [f"{ratio:.1f}", f"{means['sad']:.3f}"]
        lines.append(f"| {name} | {output} | " + " | ".join(cells) + " |")
    return lines


def _no_target_lines(table: dict) -> list[str]:
    """How well each variant's grounding score tells texts naming nothing from texts naming an instance."""
    rows = [(name, summary["grounding"]) for name, summary in table.items() if summary.get("grounding")]
    if not rows:
        return []
    first = rows[0][1]
    lines = [
        "",
        f"Texts that name nothing (`--no_target_share`): {first['no_target_samples']} test samples with an all-zero "
        f"target, beside the {first['target_samples']} with one (the metrics above are on the latter). The grounding "
        "score (`SoftGroundingMattingOutput.grounding_score`) tells them apart with this AUROC; the rejection is the "
        "share of no-target samples under the threshold that rejects "
        f"{first['target_false_rejection_rate']:.0%} of the samples with a target; SAD: the mass predicted where "
        "there is nothing.",
        "",
        "| variant | AUROC | no-target rejection | threshold | SAD on no-target samples |",
        "|---|---|---|---|---|",
    ]
    for name, grounding in rows:
        if grounding.get("auroc") is None:  # the constant baseline has no score
            continue
        lines.append(
            f"| {name} | {grounding['auroc']:.3f} | {grounding['no_target_rejection_rate']:.1%} | "
            f"{grounding['threshold']:.3f} | {grounding['no_target_mean']['sad']:.3f} |"
        )
    return lines


def write_results(
    args,
    sizes: dict,
    table: dict,
    samples: dict,
    probes: dict,
    benchmark: dict,
    seconds: dict,
) -> None:
    lines = _recipe_lines(args, sizes, table, benchmark)
    lines += _table_lines(table, samples)
    lines += _paired_lines(samples)
    lines += _probe_lines(probes)
    lines += _no_target_lines(table)
    lines += [
        "",
        "Wall time (this machine, 2 cores, shared with other work while it ran):",
        "",
    ]
    lines += [f"- {stage}: {value / 60:.1f} min" for stage, value in seconds.items()]
    base = sum(v for k, v in seconds.items() if k.startswith(("data", "base model")))
    lines += [
        f"- base pretraining (with the data): {base / 60:.1f} min; the ablation's training: "
        f"{(sum(seconds.values()) - base) / 60:.1f} min",
    ]
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
