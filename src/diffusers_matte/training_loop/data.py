# Copyright 2026 The diffusers-matte authors. Licensed under the Apache License, Version 2.0.
"""Training data: the sets `--dataset` names, each through its loader, the paper's schedule between them, the
augmentation of appendix 6.2, and the data loader."""

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import datasets
import numpy as np
import torch

from ..data.common import row_has_target
from ..data.transforms import TrainingTransform, collate_training_examples

# The sets `--dataset name=folder` reads, each through its own loader, straight from the user's download.
DATASET_NAMES = ("refmatte", "refcoco", "p3m10k", "am2k", "rm1k", "folder")


# The sets whose rows are referring expressions (augmented by flips that swap "left" and "right" only) and the
# image-level matting sets GFM's composition route (RSSN) applies to (appendix 6.2).
RSSN_SOURCES = ("p3m10k", "am2k")


CAPTIONS_FILE = "captions.json"


class DatasetArgumentError(FileNotFoundError):
    """A `--dataset` value that names no known set, a missing folder, or a folder without the set's layout."""


@dataclass
class DatasetSpec:
    """One `--dataset` value: `synthetic`, a `save_to_disk` folder, or `name=folder`."""

    value: str
    name: str
    path: Optional[Path] = None


def parse_dataset_arg(value: str) -> DatasetSpec:
    """`synthetic`, `<save_to_disk folder>` or `<name>=<folder>` (`name` one of `DATASET_NAMES`)."""
    if value == "synthetic":
        return DatasetSpec(value, "synthetic")
    name, sep, path = value.partition("=")
    if not sep:
        return DatasetSpec(value, "", Path(value).expanduser())
    name = name.strip().lower().replace("-", "")
    if name not in DATASET_NAMES:
        raise ValueError(
            f"--dataset {value!r}: unknown set {name!r}; expected one of {', '.join(DATASET_NAMES)} (as "
            "name=folder), 'synthetic', or a save_to_disk folder."
        )
    return DatasetSpec(value, name, Path(path).expanduser())


def _is_saved_dataset(path: Path) -> bool:
    return any((path / name).is_file() for name in ("dataset_dict.json", "dataset_info.json", "state.json"))


def _load_saved(path: Path) -> datasets.Dataset:
    rows = datasets.load_from_disk(str(path))
    if isinstance(rows, datasets.DatasetDict):
        if "train" not in rows:
            raise KeyError(f"it has the splits {list(rows)} but no 'train' split")
        rows = rows["train"]
    return rows


def load_dataset_spec(spec: DatasetSpec, args: argparse.Namespace) -> datasets.Dataset:
    """The training rows of one `--dataset` value (its train split)."""
    if spec.name == "synthetic":
        from ..data.synthetic import load_synthetic_matting

        return load_synthetic_matting(
            num_train=args.synthetic_num_train,
            num_test=0,
            seed=args.seed,
            image_size=args.synthetic_image_size,
            no_target_share=getattr(args, "synthetic_no_target_share", 0.0),
        )["train"]
    what = "expected 'synthetic' or a save_to_disk folder" if not spec.name else f"the {spec.name} folder"
    if not spec.path.is_dir():
        raise DatasetArgumentError(f"--dataset {spec.value!r}: {what} {str(spec.path)!r} does not exist.")
    cache_dir = getattr(args, "dataset_cache_dir", None)
    captions = spec.path / CAPTIONS_FILE
    captions = str(captions) if captions.is_file() else None
    try:
        if not spec.name or _is_saved_dataset(spec.path):
            return _load_saved(spec.path)
        if spec.name == "refmatte":
            from ..data.refmatte import load_refmatte

            return load_refmatte(spec.path, split="train", cache_dir=cache_dir)
        if spec.name == "refcoco":
            from ..data.refcoco import load_refcoco

            rows = load_refcoco(spec.path, splits=("train",), alpha_source=args.refcoco_alpha, cache_dir=cache_dir)
            return rows["train"]
        if spec.name == "p3m10k":
            from ..data.p3m import load_p3m10k

            return load_p3m10k(spec.path, split="train", captions_file=captions, cache_dir=cache_dir)
        if spec.name == "am2k":
            from ..data.am2k import load_am2k

            return load_am2k(spec.path, split="train", captions_file=captions, cache_dir=cache_dir)
        from ..data.folder import load_image_alpha_folder

        rows = load_image_alpha_folder(spec.path, captions_file=captions, source=spec.name, cache_dir=cache_dir)
        return rows["train"] if isinstance(rows, datasets.DatasetDict) else rows
    except (FileNotFoundError, KeyError, ValueError, OSError) as error:
        message = str(error).strip() or type(error).__name__
        raise DatasetArgumentError(
            f"--dataset {spec.value!r}: {str(spec.path)!r} does not have the layout of {what}: {message}"
        ) from None


def load_train_sets(args: argparse.Namespace) -> dict[str, datasets.Dataset]:
    """Every `--dataset` as `{name: rows}`, in the order given. A save_to_disk folder is named by its rows'
    `source` when they share one (so a saved RefMatte copy takes RefMatte's place in the schedule), else by its
    folder name."""
    from accelerate import PartialState

    values = args.dataset or ["synthetic"]
    specs = [parse_dataset_arg(value) for value in values]  # all names checked before anything is read
    found: dict[str, datasets.Dataset] = {}
    with PartialState().main_process_first():  # the loaders build a datasets cache: once, on the main process
        for spec in specs:
            rows = load_dataset_spec(spec, args)
            name = spec.name
            if not name:
                sources = set(rows.unique("source")) if "source" in rows.column_names else set()
                name = sources.pop() if len(sources) == 1 else spec.path.name
            if name in found:
                raise ValueError(f"--dataset {spec.value!r}: a second set named {name!r}; give each set once.")
            if args.max_train_samples is not None:
                rows = rows.select(range(min(args.max_train_samples, len(rows))))
            if len(rows) == 0:
                raise DatasetArgumentError(f"--dataset {spec.value!r}: {str(spec.path)!r} holds no training rows.")
            found[name] = rows
    args.train_sets = {name: (spec.value, len(rows)) for spec, (name, rows) in zip(specs, found.items())}
    return found


def load_train_rows(args: argparse.Namespace) -> datasets.Dataset:
    """The rows of the first `--dataset` (the synthetic set by default)."""
    return next(iter(load_train_sets(args).values()))


def make_augmentations(args: argparse.Namespace) -> dict:
    """The augmentation of appendix 6.2 for each source, by the rows' `source` column: GFM's composition route
    (RSSN: background blur with the image's union alpha, Gaussian noise, GFM's crop for the image-level sets, and a
    horizontal flip) for RefMatte's composites and, unless `--no_rssn`, for P3M-10k and AM-2k; a flip alone
    elsewhere. Every flip swaps "left" and "right" in the expression. The synthetic set is not augmented;
    `--no_augment` turns everything off."""
    from ..data.augment import CompositeAugment

    if args.no_augment:
        return {}
    flip = CompositeAugment(p_noise=0.0, p_flip=0.5)
    rssn = CompositeAugment(p_noise=0.5, p_flip=0.5, p_blur=0.5, crop=True)
    augment = dict.fromkeys(("refcoco", "rm1k", "folder"), flip)
    augment["refmatte"] = CompositeAugment(p_noise=0.5, p_flip=0.5, p_blur=0.5)
    for name in RSSN_SOURCES:
        augment[name] = flip if args.no_rssn else rssn
    return augment


class RowDataset(torch.utils.data.Dataset):
    """Rows of the common data schema, from one set or several, turned into training tensors, reproducibly.

    Indices are global over the sets, in their order. An integer `index` (the shuffled one-set loader) draws the
    expression and augmentation from `(seed, epoch, index)`; an `(index, draw)` pair (the scheduled loader) from
    `(seed, draw)`, `draw` numbering the samples of the run, so a resumed run sees exactly the batches of an
    uninterrupted one. Each example also carries `dataset`, the name of its set, and `has_target`, a bool tensor
    (False for a text that names nothing in the image: its alpha is all zero, so its region map is all background,
    and the losses of eqs. 2, 7 and 8 teach the model to predict nothing). Rows of images with several instances get
    the union of their alphas (for RefMatte's background blur).
    """

    def __init__(self, rows, transform: TrainingTransform, seed: int):
        self.sets = dict(rows) if isinstance(rows, dict) else {"": rows}
        self.names = list(self.sets)
        self.offsets = np.cumsum([0] + [len(r) for r in self.sets.values()]).tolist()
        self.transform, self.seed, self.epoch = transform, seed, 0
        self._siblings: dict[str, dict[str, list[int]]] = {}

    @property
    def rows(self) -> datasets.Dataset:
        return self.sets[self.names[0]]

    @property
    def lengths(self) -> dict[str, int]:
        return {name: len(rows) for name, rows in self.sets.items()}

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.offsets[-1]

    def _union_alpha(self, name: str, row: dict) -> Optional[np.ndarray]:
        augment = self.transform.augment_for(row.get("source", ""))
        if augment is None or not getattr(augment, "p_blur", 0) or "image_id" not in row:
            return None
        rows = self.sets[name]
        if name not in self._siblings:
            by_image: dict[str, list[int]] = {}
            for i, image_id in enumerate(rows["image_id"]):
                by_image.setdefault(image_id, []).append(i)
            self._siblings[name] = by_image
        union = None
        for i in self._siblings[name].get(row["image_id"], []):
            alpha = np.asarray(rows[i]["alpha"].convert("L"), dtype=np.float32) / 255.0
            union = alpha if union is None or union.shape != alpha.shape else np.maximum(union, alpha)
        return union

    def __getitem__(self, key) -> dict:
        if isinstance(key, tuple):
            index, draw = key
            self.transform.rng = np.random.default_rng([self.seed, 1, draw])
        else:
            index = key
            self.transform.rng = np.random.default_rng([self.seed, self.epoch, index])
        k = int(np.searchsorted(self.offsets, index, side="right")) - 1
        name, row = self.names[k], self.sets[self.names[k]][index - self.offsets[k]]
        example = self.transform(row, union_alpha=self._union_alpha(name, row))
        example["dataset"] = name or row.get("source", "")
        example["has_target"] = torch.tensor(row_has_target(row))
        return example


class _StepSchedule:
    """A per-step schedule read once per optimiser step: micro-batch `m` trains on the source of step
    `m // gradient_accumulation_steps`."""

    def __init__(self, schedule, accumulation: int):
        self.schedule, self.accumulation = schedule, accumulation

    def source(self, step: int) -> str:
        return self.schedule.source(step // self.accumulation)


class ProcessScheduledBatchSampler(torch.utils.data.Sampler):
    """This process's share of the scheduled batches: each micro-batch of the run is drawn as one batch of
    `batch_size x num_processes` rows from the schedule's source (`ScheduledBatchSampler`) and split between the
    processes, so every process trains on the same set at every step. Yields `(index, draw)` pairs for
    `RowDataset`; `start_step` (in micro-batches) resumes."""

    def __init__(self, lengths, batch_size, schedule, num_steps, seed, num_processes=1, process_index=0):
        self.lengths, self.batch_size, self.schedule = dict(lengths), batch_size, schedule
        self.num_steps, self.seed, self.start_step = num_steps, seed, 0
        self.num_processes, self.process_index = num_processes, process_index

    def __len__(self) -> int:
        return max(self.num_steps - self.start_step, 0)

    def __iter__(self):
        from ..data.schedule import ScheduledBatchSampler

        total = self.batch_size * self.num_processes
        sampler = ScheduledBatchSampler(
            self.lengths, total, self.schedule, num_steps=self.num_steps, start_step=self.start_step, seed=self.seed
        )
        first = self.process_index * self.batch_size
        for step, batch in enumerate(sampler, start=self.start_step):
            mine = batch[first : first + self.batch_size]
            yield [(index, step * total + first + k) for k, index in enumerate(mine)]


def make_schedule(args: argparse.Namespace, lengths: dict[str, int]):
    """`--data_schedule paper`: the paper's order (`DataSchedule`; RefMatte on odd steps, RefCOCO on even ones,
    a special step from the other sets after every four); `mix`: sets drawn in proportion to their size."""
    from ..data.schedule import DEFAULT_EVEN, DEFAULT_ODD, DEFAULT_SPECIAL, DataSchedule, ProportionalSchedule

    if args.data_schedule == "mix":
        return ProportionalSchedule(lengths, seed=args.seed)
    special = [*DEFAULT_SPECIAL, *(n for n in lengths if n not in (DEFAULT_ODD, DEFAULT_EVEN, *DEFAULT_SPECIAL))]
    return DataSchedule(list(lengths), special=special, seed=args.seed)


def make_transform(args: argparse.Namespace, latent_factor: int) -> TrainingTransform:
    return TrainingTransform(
        resolution=args.resolution,
        latent_factor=latent_factor,
        alpha_factors=(),
        kernel_size=args.morphology_kernel_size,
        augment=make_augmentations(args),
    )


def make_dataloader(args: argparse.Namespace, latent_factor: int) -> torch.utils.data.DataLoader:
    """One set: its rows shuffled each epoch (the loader `train` hands to accelerate). Several sets: one batch per
    step from the step's set (`--data_schedule`), a function of the seed and the step, split between the processes
    here (this loader is not prepared by accelerate)."""
    from accelerate import PartialState

    sets = load_train_sets(args)
    dataset = RowDataset(sets, make_transform(args, latent_factor), args.seed)
    if len(sets) == 1:
        return torch.utils.data.DataLoader(
            dataset,
            batch_size=args.train_batch_size,
            shuffle=True,
            drop_last=True,
            collate_fn=collate_training_examples,
            num_workers=args.dataloader_num_workers,
        )
    state = PartialState()
    sampler = ProcessScheduledBatchSampler(
        dataset.lengths,
        args.train_batch_size,
        _StepSchedule(make_schedule(args, dataset.lengths), args.gradient_accumulation_steps),
        num_steps=args.max_train_steps * args.gradient_accumulation_steps,
        seed=args.seed,
        num_processes=state.num_processes,
        process_index=state.process_index,
    )
    return torch.utils.data.DataLoader(
        dataset,
        batch_sampler=sampler,
        collate_fn=collate_training_examples,
        num_workers=args.dataloader_num_workers,
    )
