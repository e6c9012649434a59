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
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Union

import datasets

from .common import (
    DatasetLayoutError,
    MattingBuilder,
    MattingBuilderConfig,
    PathLike,
    first_existing,
    load_with_builder,
    read_captions,
    require_dir,
)
from .folder import image_level_rows

SOURCE = "p3m10k"
# split name -> (folder relative to the root, image sub-folder, has trimap)
P3M_SPLITS = {
    "train": ("train", "blurred_image", False),
    "p3m_500_p": ("P3M-500-P", "blurred_image", True),
    "p3m_500_np": ("P3M-500-NP", "original_image", True),
}


@dataclass
class P3MConfig(MattingBuilderConfig):
    splits: Sequence[str] = tuple(P3M_SPLITS)


class P3M10k(MattingBuilder):
    """P3M-10k: one row per image; splits train, p3m_500_p, p3m_500_np (whichever are present)."""

    BUILDER_CONFIG_CLASS = P3MConfig
    SOURCE = SOURCE

    def collect_rows(self, root: Path) -> Dict[str, List[Dict[str, Any]]]:
        unknown = set(self.config.splits) - set(P3M_SPLITS)
        if unknown:
            raise ValueError(f"unknown P3M-10k split(s) {sorted(unknown)}; choose from {list(P3M_SPLITS)}")
        base = first_existing([root / "P3M-10k", root], "P3M-10k folder")
        captions = read_captions(self.config.captions_file)
        splits = {}
        for split in self.config.splits:
            folder, image_name, has_trimap = P3M_SPLITS[split]
            candidates = [base / folder] if split == "train" else [base / "validation" / folder, base / folder]
            found = [c for c in candidates if c.is_dir()]
            if not found:
                continue
            split_dir = found[0]
            splits[split] = image_level_rows(
                require_dir(split_dir / image_name, f"P3M-10k {split} image"),
                require_dir(split_dir / "mask", f"P3M-10k {split} mask"),
                SOURCE,
                split,
                self.config.captions_file,
                trimap_dir=(require_dir(split_dir / "trimap", f"P3M-10k {split} trimap") if has_trimap else None),
                captions=captions,
            )
        if not splits:
            found = sorted(p.name for p in base.iterdir())
            raise DatasetLayoutError(
                f"no P3M-10k split under {base}: expected train/, validation/P3M-500-P/ or validation/P3M-500-NP/; "
                f"found {found}"
            )
        return splits


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
