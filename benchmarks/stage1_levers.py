#!/usr/bin/env python
# Copyright 2026 The diffusers-matte authors. Licensed under the Apache License, Version 2.0.
"""What moves stage-1 grounding on the synthetic replication: short teacher runs, one lever changed at a time.

Each variant trains the stage-1 teacher (`training/train_teacher.py`, eq. 2) for `--steps` steps with the recipe
of `synthetic_ablation.py` (same data, base, batch, kernel, learning-rate schedule), changing one thing, and is
probed with `grounding_probe.py` on the first `--probe_images` test images: the teacher's P(not background) on the
referred instance and on the image's other instances, per expression kind. A ratio of 1.0 means the text is ignored.

    python benchmarks/stage1_levers.py --work_dir outputs/v2 --out_dir outputs/levers

`--work_dir` is a work folder of `synthetic_ablation.py` (its `base/` and `data/` are read, nothing is written
there). The variants:

- `recipe`: the recipe as it is;
- `pooled_text`: the UNet also conditioned on an attention-pooled text embedding added to its time embedding
  (diffusers' `addition_embed_type="text"`, as SD-XL adds a pooled text embedding), newly initialised on top of the
  pretrained weights: a global, FiLM-like path for the sentence besides cross-attention;
- `image_batches`: every batch made of whole images, all instances of an image each with its own expression, so a
  batch shows the same image under several sentences with different targets;
- `lr_3e-4`: stage 1 at learning rate 3e-4 instead of 1e-3;
- `lr_3e-3`: learning rate 3e-3;
- `batch_8`: batches of 8 rows for 4x the steps: as many samples, four times the updates (is it updates that
  grounding needs, or samples?);
- `timestep_500`: the single-step prediction at timestep 500 instead of 0 (`--prediction_timestep`): the clean
  latent read where the pretrained denoiser learned to rely on its caption.

Each teacher folder is kept; a variant whose folder is complete is only probed again.
"""

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

from diffusers_matte.data.synthetic import TEXT_TYPES

BENCHMARKS = Path(__file__).resolve().parent
REPO = BENCHMARKS.parent
RESULTS = BENCHMARKS / "results" / "stage1_levers.md"
VARIANTS = {
    "recipe": {},
    "pooled_text": {"pooled_text": True},
    "image_batches": {"image_batches": True},
    "lr_3e-4": {"learning_rate": 3e-4},
    "lr_3e-3": {"learning_rate": 3e-3},
    "batch_8": {"batch_size": 8},
    "timestep_500": {"prediction_timestep": 500},
}


def variant_base(base: Path, out: Path, pooled_text: bool) -> Path:
    """`base` itself, or a copy (links to its other components) whose UNet gains the pooled-text path."""
    if not pooled_text:
        return base
    from diffusers import UNet2DConditionModel

    folder = out / "base_pooled_text"
    if not (folder / "unet").exists():
        folder.mkdir(parents=True, exist_ok=True)
        for component in ("vae", "tokenizer", "scheduler", "text_encoder", "model_index.json"):
            if not (folder / component).exists():
                (folder / component).symlink_to((base / component).resolve())
        config = dict(UNet2DConditionModel.load_config(base, subfolder="unet"))
        config.update(addition_embed_type="text", addition_embed_type_num_heads=4)
        torch.manual_seed(0)
        unet = UNet2DConditionModel.from_config(config)
        pretrained = UNet2DConditionModel.from_pretrained(base, subfolder="unet").state_dict()
        missing, unexpected = unet.load_state_dict(pretrained, strict=False)
        if unexpected or any(not key.startswith("add_embedding.") for key in missing):
            raise RuntimeError(f"unexpected weights: missing {missing}, unexpected {unexpected}")
        unet.save_pretrained(folder / "unet")
    return folder


def train(name: str, lever: dict, work: Path, out: Path, steps: int, sizes: dict, seed: int) -> tuple[Path, Path]:
    """Trains one variant's teacher (unless its folder is complete); returns (base, teacher)."""
    from synthetic_ablation import stage_arguments, teacher_arguments

    base = variant_base(work / "base", out, lever.get("pooled_text", False))
    if "batch_size" in lever:  # as many samples as the recipe, in smaller batches
        steps = steps * sizes["batch_size"] // lever["batch_size"]
        sizes = {**sizes, "batch_size": lever["batch_size"]}
    teacher = out / f"teacher_{name}"
    if not (teacher / "README.md").exists():
        script = (
            [__file__, "train-image-batches"] if lever.get("image_batches") else [REPO / "training/train_teacher.py"]
        )
        learning_rate = lever.get("learning_rate")
        command = [
            sys.executable, *map(str, script), "--pretrained_model_name_or_path", str(base),
            *map(str, stage_arguments(work / "data", sizes, seed)),
            *map(str, teacher_arguments(steps, *([learning_rate] if learning_rate else []))),
            *(["--prediction_timestep", str(lever["prediction_timestep"])] if "prediction_timestep" in lever else []),
            "--output_dir", str(teacher),
        ]  # fmt: skip
        print("$", " ".join(command[1:]), flush=True)
        with (out / f"teacher_{name}.log").open("w") as log:
            subprocess.run(command, check=True, stdout=log, stderr=subprocess.STDOUT)
    return base, teacher


def probe(base: Path, teacher: Path, work: Path, resolution: int, num_images: int) -> dict:
    """Per expression kind and overall: P(not background) on the referred instance and the other instances."""
    import datasets
    import grounding_probe

    test = grounding_probe.first_images(datasets.load_from_disk(str(work / "data"))["test"], num_images)
    predict = grounding_probe.teacher_predictor(base, teacher, resolution, outputs=("P(not background)",))
    return grounding_probe.by_kind(grounding_probe.probe(test, predict, by_expression=True)["P(not background)"])


def write_results(path: Path, command: str, sizes: dict, steps: int, num_images: int, rows: dict) -> None:
    lines = [
        "# Stage-1 levers on the synthetic replication",
        "",
        f"Command: `{command}`",
        "",
        f"The teacher of `synthetic_ablation.py`'s recipe (batch {sizes['batch_size']}, {sizes['resolution']} px, "
        f"learning rate 1e-3 poly unless said), {steps} steps per variant, one lever changed at a time; probed on "
        f"the first {num_images} test images (every instance, every expression). Cells: P(not background) on the "
        "referred instance / on the image's other instances = their ratio (1.0: the text is ignored).",
        "",
        "| variant | " + " | ".join(TEXT_TYPES) + " | all |",
        "|---|" + "---|" * (len(TEXT_TYPES) + 1),
    ]
    for name, means in rows.items():
        cells = [
            f"{m['referred']:.3f} / {m['others']:.3f} = {m['referred'] / m['others']:.2f}" for m in means.values()
        ]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def train_with_image_batches(argv: list[str]) -> None:
    """`train_teacher.py` whose batches hold whole images (see `ImageBatchSampler`)."""
    sys.path.insert(0, str(REPO / "training"))
    import train_teacher

    from diffusers_matte.training_loop import data

    def make_dataloader(args, latent_factor):
        dataset = data.RowDataset(data.load_train_sets(args), data.make_transform(args, latent_factor), args.seed)
        sampler = ImageBatchSampler(dataset.rows["image_id"], args.train_batch_size, args.seed)
        return torch.utils.data.DataLoader(dataset, batch_sampler=sampler, collate_fn=data.collate_training_examples)

    train_teacher.make_dataloader = make_dataloader
    train_teacher.main(train_teacher.parse_args(argv))


class ImageBatchSampler(torch.utils.data.Sampler):
    """Batches of whole images, shuffled each epoch: images are added until a batch has `batch_size` rows or more."""

    def __init__(self, image_ids: list[str], batch_size: int, seed: int):
        groups: dict[str, list[int]] = {}
        for index, image_id in enumerate(image_ids):
            groups.setdefault(image_id, []).append(index)
        self.groups, self.batch_size, self.seed, self.epoch = list(groups.values()), batch_size, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return sum(map(len, self.groups)) // self.batch_size

    def __iter__(self):
        batch = []
        for group in np.random.default_rng([self.seed, self.epoch]).permutation(len(self.groups)):
            batch += self.groups[group]
            if len(batch) >= self.batch_size:
                yield batch
                batch = []


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work_dir", type=Path, required=True, help="a synthetic_ablation.py work folder")
    parser.add_argument("--out_dir", type=Path, required=True)
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--probe_images", type=int, default=40)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    sizes = json.loads((args.work_dir / "recipe.json").read_text())
    args.out_dir.mkdir(parents=True, exist_ok=True)
    rows = {}
    for name in args.variants:
        base, teacher = train(name, VARIANTS[name], args.work_dir, args.out_dir, args.steps, sizes, args.seed)
        rows[name] = probe(base, teacher, args.work_dir, sizes["resolution"], args.probe_images)
    command = f"python benchmarks/stage1_levers.py --work_dir {args.work_dir} --out_dir {args.out_dir}"
    command += "" if args.steps == 600 else f" --steps {args.steps}"
    command += "" if args.variants == list(VARIANTS) else " --variants " + " ".join(args.variants)
    write_results(args.results, command, sizes, args.steps, args.probe_images, rows)


if __name__ == "__main__":
    if sys.argv[1:2] == ["train-image-batches"]:
        train_with_image_batches(sys.argv[2:])
    else:
        main()
