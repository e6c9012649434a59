# Copyright 2026 The diffusers-matte authors. Licensed under the Apache License, Version 2.0.
"""Generic "image + alpha (+ caption)" folder loader: RM-1k (never published) and users' own data.

Layout::

    <data_dir>/[<split>/]<image_dir>/<stem>.jpg|.jpeg|.png
    <data_dir>/[<split>/]<alpha_dir>/<stem>.png|.jpg
    captions JSON (optional): {"<stem>": "caption" | ["caption", ...]}

Images and alphas are paired by file stem, never by sorted position; a stem present on one side only is an error.
Without split folders the whole folder is the ``train`` split.
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
    captions_for,
    index_by_stem,
    load_with_builder,
    make_row,
    pair_by_stem,
    read_captions,
    require_dir,
)


def image_level_rows(
    image_dir: Path,
    alpha_dir: Path,
    source: str,
    split: str,
    captions_file: Optional[PathLike] = None,
    trimap_dir: Optional[Path] = None,
    captions: Optional[Dict[str, List[str]]] = None,
) -> List[Dict[str, Any]]:
    """One row per image of an image-level matting set (one alpha per image, texts from the caption side-file)."""
    images = index_by_stem(image_dir)
    alphas = index_by_stem(alpha_dir)
    if not images:
        raise DatasetLayoutError(f"no .jpg/.jpeg/.png images in {image_dir}")
    stems = pair_by_stem(images, alphas, image_dir, alpha_dir)
    if captions is None:
        captions = read_captions(captions_file)
    trimaps = index_by_stem(trimap_dir) if trimap_dir is not None else {}
    if trimap_dir is not None:
        missing = sorted(set(stems) - set(trimaps))
        if missing:
            raise DatasetLayoutError(f"{len(missing)} image(s) without trimap in {trimap_dir}, e.g. {missing[:5]}")
    rows = []
    for stem in stems:
        meta: Dict[str, Any] = {"split": split}
        if stem in trimaps:
            meta["trimap"] = str(trimaps[stem])
        texts = captions_for(captions, stem, captions_file)
        types = ["caption"] * len(texts)
        rows.append(
            make_row(
                images[stem],
                alphas[stem],
                texts,
                stem,
                stem,
                source,
                text_types=types,
                meta=meta,
            )
        )
    return rows


@dataclass
class ImageAlphaFolderConfig(MattingBuilderConfig):
    """``image_dir`` / ``alpha_dir``: sub-folder names; ``source``: the value of the ``source`` column."""

    image_dir: str = "images"
    alpha_dir: str = "alphas"
    source: str = "folder"
    splits: Optional[Sequence[str]] = None


class ImageAlphaFolder(MattingBuilder):
    """A folder of images and alphas paired by stem, with optional captions; split folders are detected."""

    BUILDER_CONFIG_CLASS = ImageAlphaFolderConfig

    def collect_rows(self, root: Path) -> Dict[str, List[Dict[str, Any]]]:
        cfg = self.config
        if (root / cfg.image_dir).is_dir():
            split_dirs = {"train": root}
        else:
            names = cfg.splits or sorted(p.name for p in root.iterdir() if (p / cfg.image_dir).is_dir())
            split_dirs = {name: root / name for name in names}
            if not split_dirs:
                found = sorted(p.name for p in root.iterdir())
                raise DatasetLayoutError(
                    f"expected {root}/{cfg.image_dir}/ or <split>/{cfg.image_dir}/ folders; found {found}"
                )
        captions = read_captions(cfg.captions_file)
        return {
            split: image_level_rows(
                require_dir(folder / cfg.image_dir, f"{split} image"),
                require_dir(folder / cfg.alpha_dir, f"{split} alpha"),
                cfg.source,
                split,
                cfg.captions_file,
                captions=captions,
            )
            for split, folder in split_dirs.items()
        }


def load_image_alpha_folder(
    data_dir: PathLike,
    image_dir: str = "images",
    alpha_dir: str = "alphas",
    captions_file: Optional[PathLike] = None,
    source: str = "folder",
    split: Optional[str] = None,
    cache_dir: Optional[PathLike] = None,
) -> Union[datasets.Dataset, datasets.DatasetDict]:
    """Loads an image/alpha folder (e.g. RM-1k with ``source="rm1k"``); see the module docstring for the layout."""
    return load_with_builder(
        ImageAlphaFolder,
        data_dir,
        split=split,
        cache_dir=cache_dir,
        image_dir=image_dir,
        alpha_dir=alpha_dir,
        captions_file=captions_file,
        source=source,
    )
