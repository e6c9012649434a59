# Copyright 2026 The diffusers-matte authors. Licensed under the Apache License, Version 2.0.
"""What the three training scripts in `training/` share: arguments, frozen encoders, data and the loop.

The scripts stay flat and readable, in the style of diffusers' `examples/`: each builds its models and defines
how one batch becomes a loss; this module runs the rest (accelerate, gradient accumulation, clipping, the
appendix Table 4 schedule, checkpoints with `--resume_from_checkpoint latest`, logging).
"""

from .data import (
    CAPTIONS_FILE,
    DATASET_NAMES,
    RSSN_SOURCES,
    DatasetArgumentError,
    DatasetSpec,
    ProcessScheduledBatchSampler,
    RowDataset,
    load_dataset_spec,
    load_train_rows,
    load_train_sets,
    make_augmentations,
    make_dataloader,
    make_schedule,
    make_transform,
    parse_dataset_arg,
)
from .ema import EMA_STATE, make_ema_models, register_ema_hooks
from .loop import (
    FrozenEncoders,
    make_accelerator,
    make_scheduler,
    mean_over_processes,
    train,
    truncate_train_log,
    weight_dtype,
)
from .options import (
    STAGE_SCRIPTS,
    TRACKER_PACKAGES,
    TRAIN_LOG,
    HelpFormatter,
    add_training_args,
    check_output_dir,
    check_tracker,
    kernel_for_resolution,
    make_parser,
    prepare_hub_repo,
    run_artifacts,
    validate_args,
    validation_pairs,
)
from .outputs import push_outputs, save_outputs, training_summary
from .validation import VALIDATION_DIR, VALIDATION_GRID, load_validation_pixels, log_validation

__all__ = [
    "CAPTIONS_FILE",
    "DATASET_NAMES",
    "DatasetArgumentError",
    "DatasetSpec",
    "EMA_STATE",
    "FrozenEncoders",
    "HelpFormatter",
    "ProcessScheduledBatchSampler",
    "RSSN_SOURCES",
    "RowDataset",
    "STAGE_SCRIPTS",
    "TRACKER_PACKAGES",
    "TRAIN_LOG",
    "VALIDATION_DIR",
    "VALIDATION_GRID",
    "add_training_args",
    "check_output_dir",
    "check_tracker",
    "kernel_for_resolution",
    "load_dataset_spec",
    "load_train_rows",
    "load_train_sets",
    "load_validation_pixels",
    "log_validation",
    "make_accelerator",
    "make_augmentations",
    "make_dataloader",
    "make_ema_models",
    "make_parser",
    "make_schedule",
    "make_scheduler",
    "make_transform",
    "mean_over_processes",
    "parse_dataset_arg",
    "prepare_hub_repo",
    "push_outputs",
    "register_ema_hooks",
    "run_artifacts",
    "save_outputs",
    "train",
    "training_summary",
    "truncate_train_log",
    "validate_args",
    "validation_pairs",
    "weight_dtype",
]
