# Copyright 2026 The diffusers-matte authors. Licensed under the Apache License, Version 2.0.
"""Batch matting of a :class:`datasets.Dataset`: an image column and a prompt column in, an alpha column out.

Two levels:

- :class:`MattingFunction`, a function for ``Dataset.map(batched=True)`` (or any engine that maps batches of
  columns, e.g. Ray Data's ``map_batches`` on the same dict-of-lists batches)::

      from diffusers_matte.batch import MattingFunction

      dataset = dataset.map(MattingFunction(pipe, prompt_column="caption"), batched=True, batch_size=8)

- :func:`matte_dataset`, which also takes the prompts as a list (or one prompt for all rows) and, under
  ``accelerate launch`` with N processes (one machine or several), mattes each process's contiguous share on that
  process's device and returns the whole dataset on every process (or leaves one saved shard per process in
  ``output_dir``, for data too large to gather: :func:`load_matted_dataset` reads them back as one dataset).

A row's prompt is a string (its alpha is one matte) or a list of strings (its alpha is a list of mattes, one per
prompt, the image encoded once). Mattes are 8-bit grayscale PIL images (``output_type="pil"``, stored by datasets
as PNG) or float32 ``(H, W)`` arrays (``"np"``), at the image's size.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Union

import numpy as np

from .distributed import current_processes

OUTPUT_TYPES = ("pil", "np")

SHARD_PREFIX = "process-"


class MattingFunction:
    """Mattes one batch of dataset rows: ``function(batch) -> {alpha_column: mattes}``, for
    ``Dataset.map(function, batched=True)``.

    Args:
        pipeline: a :class:`~diffusers_matte.SoftGroundingMattingPipeline` (on the device to use).
        image_column: the column of images (PIL images, arrays or tensors the pipeline accepts).
        prompt_column: the column of prompts: a string per row, or a list of strings per row.
        alpha_column: the column to add.
        output_type: ``"pil"`` (8-bit grayscale images) or ``"np"`` (float32 ``(H, W)`` arrays in [0, 1]).
        processing_resolution: the pipeline's ``processing_resolution`` (``None``: its default, ``0``: the
            image's own size).
        pipeline_batch_size: (image, prompt) pairs that go through the models at once (bounds memory); ``None``:
            all pairs of the map batch together.

    The mattes are the pipeline's own for the same images and prompts in one call: ``pipeline(images,
    prompt=prompts, ...)`` with the batch's rows.
    """

    def __init__(
        self,
        pipeline,
        *,
        image_column: str = "image",
        prompt_column: str = "prompt",
        alpha_column: str = "alpha",
        output_type: str = "pil",
        processing_resolution: Optional[int] = None,
        pipeline_batch_size: Optional[int] = None,
    ):
        if output_type not in OUTPUT_TYPES:
            raise ValueError(f"`output_type` must be one of {OUTPUT_TYPES}, got {output_type!r}.")
        if pipeline_batch_size is not None and (not isinstance(pipeline_batch_size, int) or pipeline_batch_size < 1):
            raise ValueError(f"`pipeline_batch_size` must be a positive integer or None, got {pipeline_batch_size!r}.")
        if alpha_column in (image_column, prompt_column):
            raise ValueError(f"`alpha_column` {alpha_column!r} must differ from the image and prompt columns.")
        self.pipeline = pipeline
        self.image_column = image_column
        self.prompt_column = prompt_column
        self.alpha_column = alpha_column
        self.output_type = output_type
        self.processing_resolution = processing_resolution
        self.pipeline_batch_size = pipeline_batch_size

    def __call__(self, batch: Dict[str, List[Any]]) -> Dict[str, List[Any]]:
        for column in (self.image_column, self.prompt_column):
            if column not in batch:
                raise KeyError(f"the batch has no column {column!r} (its columns: {sorted(batch)}).")
        images, prompts = list(batch[self.image_column]), [_row_prompts(p) for p in batch[self.prompt_column]]
        if len(images) != len(prompts):
            raise ValueError(f"the batch has {len(images)} images but {len(prompts)} prompts.")
        if not images:
            return {self.alpha_column: []}
        pairs = sum(len(p) for p in prompts)
        output = self.pipeline(
            images,
            prompt=prompts,
            processing_resolution=self.processing_resolution,
            batch_size=self.pipeline_batch_size or pairs,
            output_type="np",
        ).alpha
        mattes = [self._convert(alpha) for alpha in output]  # image-major: each image's prompts in order
        column, start = [], 0
        for raw, row in zip(batch[self.prompt_column], prompts):
            column.append(mattes[start] if isinstance(raw, str) else mattes[start : start + len(row)])
            start += len(row)
        return {self.alpha_column: column}

    def _convert(self, alpha: np.ndarray):
        alpha = np.asarray(alpha, dtype=np.float32)
        alpha = alpha[..., 0] if alpha.ndim == 3 and alpha.shape[-1] == 1 else alpha
        if self.output_type == "np":
            return alpha
        from .pipelines.soft_grounding.image_processor import alpha_to_pil

        return alpha_to_pil(alpha)


def _row_prompts(prompt: Union[str, Sequence[str]]) -> List[str]:
    if isinstance(prompt, str):
        prompts = [prompt]
    elif isinstance(prompt, (list, tuple)) and all(isinstance(p, str) for p in prompt):
        prompts = list(prompt)
    else:
        raise TypeError(f"a row's prompt must be a string or a list of strings, got {prompt!r}.")
    if not prompts or any(not p.strip() for p in prompts):
        raise ValueError(f"a row's prompts must be non-empty strings, got {prompt!r}.")
    return prompts


def matte_dataset(
    dataset,
    pipeline,
    prompts: Union[str, Sequence[Any], None] = None,
    *,
    image_column: str = "image",
    prompt_column: str = "prompt",
    alpha_column: str = "alpha",
    output_type: str = "pil",
    processing_resolution: Optional[int] = None,
    batch_size: int = 8,
    pipeline_batch_size: Optional[int] = None,
    output_dir: Union[str, os.PathLike, None] = None,
    **map_kwargs: Any,
):
    """``dataset`` with an ``alpha_column`` of mattes, across all the processes of ``accelerate launch``.

    Args:
        dataset: a :class:`datasets.Dataset` with an image column.
        pipeline: the pipeline, on this process's device (``diffusers_matte.distributed.current_processes().device``
            under a launcher).
        prompts: one prompt for every row, or one entry (a string or a list of strings) per row, added as
            ``prompt_column``; ``None`` uses the dataset's own ``prompt_column``.
        image_column / prompt_column / alpha_column / output_type / processing_resolution / pipeline_batch_size:
            see :class:`MattingFunction`.
        batch_size: rows per ``map`` batch (per pipeline call).
        output_dir: without it, every process returns the whole matted dataset (the processes' shares are
            gathered in memory). With it, each process saves its share with ``save_to_disk`` in
            ``output_dir/process-<index>-of-<N>`` (a folder every machine sees, on several machines) and returns
            the whole dataset read back from there, memory-mapped (:func:`load_matted_dataset`).
        map_kwargs: further ``Dataset.map`` arguments (``desc``, ``writer_batch_size``, ...).

    Under N processes, process k mattes the k-th contiguous share of the rows (``Dataset.shard(N, k,
    contiguous=True)``), so the rows come back in the dataset's order, and with ``batch_size`` dividing the
    shares, each pipeline call is the one a single process would make.
    """
    import datasets

    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"`batch_size` must be a positive integer, got {batch_size!r}.")
    if image_column not in dataset.column_names:
        raise ValueError(f"the dataset has no column {image_column!r} (its columns: {dataset.column_names}).")
    if alpha_column in dataset.column_names:
        raise ValueError(f"the dataset already has a column {alpha_column!r}; pass another `alpha_column`.")
    if prompts is not None:
        if prompt_column in dataset.column_names:
            raise ValueError(f"`prompts` given, but the dataset already has a column {prompt_column!r}.")
        if isinstance(prompts, str):
            prompts = [prompts] * len(dataset)
        prompts = [p if isinstance(p, str) else list(p) for p in prompts]
        if len(prompts) != len(dataset):
            raise ValueError(
                f"`prompts` has {len(prompts)} entries for {len(dataset)} rows (give one, or one per row)."
            )
        dataset = dataset.add_column(prompt_column, prompts)
    elif prompt_column not in dataset.column_names:
        raise ValueError(
            f"the dataset has no column {prompt_column!r} (its columns: {dataset.column_names}); pass `prompts`."
        )
    function = MattingFunction(
        pipeline,
        image_column=image_column,
        prompt_column=prompt_column,
        alpha_column=alpha_column,
        output_type=output_type,
        processing_resolution=processing_resolution,
        pipeline_batch_size=pipeline_batch_size,
    )
    processes = current_processes()
    share = dataset
    if processes.is_distributed:
        share = dataset.shard(num_shards=processes.num_processes, index=processes.process_index, contiguous=True)
    map_kwargs.setdefault("desc", "matting")
    gather_in_memory = processes.is_distributed and output_dir is None
    if gather_in_memory:
        map_kwargs.setdefault("keep_in_memory", True)  # pickled with its data, not a cache file's path
    silence = not processes.is_main_process and datasets.is_progress_bar_enabled()
    if silence:  # progress shown once, by the main process
        datasets.disable_progress_bars()
    try:
        matted = share.map(function, batched=True, batch_size=batch_size, **map_kwargs)
    finally:
        if silence:
            datasets.enable_progress_bars()
    if output_dir is None:
        if not gather_in_memory:
            return matted
        return datasets.concatenate_datasets(processes.gather_object(matted))
    folder = Path(output_dir) / f"{SHARD_PREFIX}{processes.process_index:05d}-of-{processes.num_processes:05d}"
    matted.save_to_disk(str(folder))
    processes.wait_for_everyone()
    return load_matted_dataset(output_dir, processes.num_processes)


def load_matted_dataset(output_dir: Union[str, os.PathLike], num_processes: Optional[int] = None):
    """The dataset :func:`matte_dataset` saved in ``output_dir``: its processes' shares, concatenated in order.

    Args:
        output_dir: the folder given to :func:`matte_dataset`.
        num_processes: the number of processes of the run to read (default: the only run in the folder).
    """
    import datasets

    folders = sorted(p for p in Path(output_dir).glob(f"{SHARD_PREFIX}*-of-*") if p.is_dir())
    runs = {p.name.rsplit("-of-", 1)[1] for p in folders}
    if num_processes is None:
        if len(runs) != 1:
            raise ValueError(
                f"{output_dir} holds {'no' if not runs else 'several'} matted runs ({sorted(runs)}); "
                "pass `num_processes` or use a folder per run."
            )
        num_processes = int(runs.pop())
    wanted = [Path(output_dir) / f"{SHARD_PREFIX}{k:05d}-of-{num_processes:05d}" for k in range(num_processes)]
    missing = [str(p) for p in wanted if not p.is_dir()]
    if missing:
        raise FileNotFoundError(f"the matted shares {missing} are missing (did every process finish?).")
    return datasets.concatenate_datasets([datasets.load_from_disk(str(p)) for p in wanted])
