# Copyright 2026 The diffusers-matte authors. Licensed under the Apache License, Version 2.0.
"""P3M-10k loader (Li et al., 2021; JizhiziLi/P3M) for the user's own copy.

Layout (P3M core/README.md)::

    <data_dir>/[P3M-10k/]train/blurred_image/<stem>.jpg      train/mask/<stem>.png
    <data_dir>/[P3M-10k/][validation/]P3M-500-P/blurred_image/<stem>.jpg  mask/<stem>.png  trimap/<stem>.png
    <data_dir>/[P3M-10k/][validation/]P3M-500-NP/original_image/<stem>.jpg mask/<stem>.png trimap/<stem>.png

``validation/`` is optional because P3M's own config puts the test sets under the root. Splits are named
``train``, ``p3m_500_p`` and ``p3m_500_np``; test rows carry their trimap path in ``meta["trimap"]``. P3M has no
text: pass ``captions_file`` (written by ``training/caption_dataset.py``) to fill ``texts``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence, Union

import datasets

from .common import MattingBuilderConfig, PathLike, load_with_builder
from .image_level import ImageLevelMattingBuilder, ImageLevelSplit

SOURCE = "p3m10k"
# The test sets lie under validation/ or, as in P3M's own config, under the root.
P3M_SPLITS = {
    "train": ImageLevelSplit(("train",), "blurred_image"),
    "p3m_500_p": ImageLevelSplit(("validation/P3M-500-P", "P3M-500-P"), "blurred_image", has_trimap=True),
    "p3m_500_np": ImageLevelSplit(("validation/P3M-500-NP", "P3M-500-NP"), "original_image", has_trimap=True),
}


@dataclass
class P3MConfig(MattingBuilderConfig):
    splits: Sequence[str] = tuple(P3M_SPLITS)


class P3M10k(ImageLevelMattingBuilder):
    """P3M-10k: one row per image; splits train, p3m_500_p, p3m_500_np (whichever are present)."""

    BUILDER_CONFIG_CLASS = P3MConfig
    SOURCE = SOURCE
    DISPLAY_NAME = "P3M-10k"
    ROOT_NAMES = ("P3M-10k",)
    SPLITS = P3M_SPLITS


def load_p3m10k(
    data_dir: PathLike,
    split: Optional[str] = None,
    captions_file: Optional[PathLike] = None,
    cache_dir: Optional[PathLike] = None,
) -> Union[datasets.Dataset, datasets.DatasetDict]:
    """Loads P3M-10k from ``data_dir``; all present splits unless ``split`` is given."""
    return load_with_builder(
        P3M10k,
        data_dir,
        split=split,
        cache_dir=cache_dir,
        **({} if split is None else {"splits": (split,)}),
        captions_file=captions_file,
    )
