# Copyright 2026 The diffusers-matte authors. Licensed under the Apache License, Version 2.0.
"""RefMatte (train, test) loader for the user's own unzipped copy (Li et al., 2023; JizhiziLi/RIM).

Layout (reconstructed from third-party loaders; the official README does not document it)::

    <data_dir>/[RefMatte/[RefMatte/]]<split>/img/rim_<split>_<8 hex>.jpg
    <data_dir>/[RefMatte/[RefMatte/]]<split>/mask/rim_<split>_<8 hex>_<k>.png     one alpha per instance, k from 1
    <data_dir>/[RefMatte/[RefMatte/]]<split>/*label*.json                         e.g. refmatte_train_label.json

The label JSON maps each instance stem (the mask name without ``.png``) to a record with at least ``image_name``
(image stem) and ``expressions`` (list of strings). Whether ``expressions`` holds four texts in the order keyword,
basic, absolute, relative, and whether a separate ``keyword`` key exists, is unverified: the loader keeps
``expressions`` as they are, logs the record keys it finds, warns when an instance does not have four, and reports
an absent or different schema with the key names it expected and found.
"""

from __future__ import annotations

import logging
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
    index_by_stem,
    load_with_builder,
    make_row,
    read_json,
    require_dir,
)

logger = logging.getLogger(__name__)

SOURCE = "refmatte"
REFMATTE_SPLITS = ("train", "test")


def find_label_file(folder: Path, preferred: str) -> Path:
    """``preferred`` if present in ``folder``, else the single ``*label*.json`` there; errors list what was found."""
    if (folder / preferred).is_file():
        return folder / preferred
    candidates = sorted(folder.glob("*label*.json"))
    if len(candidates) == 1:
        return candidates[0]
    found = sorted(p.name for p in folder.iterdir() if p.suffix == ".json")
    if not candidates:
        raise DatasetLayoutError(
            f"expected a label JSON ({preferred} or *label*.json) in {folder}; JSON files: {found}"
        )
    raise DatasetLayoutError(f"several label JSON files in {folder}, pass label_file=...: {found}")


def rows_from_label_json(
    labels: Any,
    label_path: Path,
    image_dir: Path,
    mask_dir: Path,
    source: str,
    setting: str = "expression",
    expected_texts: int = 4,
) -> List[Dict[str, Any]]:
    """Rows of a RefMatte-style label JSON ``{instance stem: {"image_name", "expressions", ...}}``."""
    if not isinstance(labels, dict) or not labels:
        raise DatasetLayoutError(
            f"{label_path} must be a non-empty JSON object keyed by instance stem, got {type(labels).__name__}"
        )
    first_key = next(iter(labels))
    first = labels[first_key]
    if not isinstance(first, dict):
        raise DatasetLayoutError(f"{label_path}: record {first_key!r} should be an object, got {type(first).__name__}")
    logger.info("%s: record keys %s", label_path.name, sorted(first))
    missing_keys = {"image_name", "expressions"} - set(first)
    if missing_keys:
        raise DatasetLayoutError(
            f"{label_path}: records need the keys image_name and expressions; record {first_key!r} has {sorted(first)}"
        )
    if setting == "keyword" and "keyword" not in first:
        raise DatasetLayoutError(
            f"setting='keyword' needs a 'keyword' key in {label_path}; record {first_key!r} has {sorted(first)}"
        )
    images = index_by_stem(image_dir)
    rows, odd_counts = [], 0
    for stem, record in labels.items():
        expressions = record.get("expressions")
        if not isinstance(expressions, list) or "image_name" not in record:
            raise DatasetLayoutError(f"{label_path}: record {stem!r} lacks image_name or an expressions list")
        if len(expressions) != expected_texts:
            odd_counts += 1
        image_name = str(record["image_name"])
        image = images.get(Path(image_name).stem, image_dir / f"{image_name}.jpg")
        texts = [str(record["keyword"])] if setting == "keyword" else [str(e) for e in expressions]
        meta = {k: v for k, v in record.items() if k not in ("expressions", "image_name")}
        meta["label_file"] = label_path.name
        rows.append(
            make_row(
                image,
                mask_dir / f"{stem}.png",
                texts,
                stem,
                Path(image_name).stem,
                source,
                meta=meta,
            )
        )
    if odd_counts:
        logger.warning(
            "%s: %d of %d instances do not have %d expressions",
            label_path,
            odd_counts,
            len(rows),
            expected_texts,
        )
    unlabeled = len(index_by_stem(mask_dir, (".png",))) - len(rows)
    if unlabeled > 0:
        logger.warning(
            "%s: %d mask file(s) have no label entry and are not loaded",
            mask_dir,
            unlabeled,
        )
    return rows


@dataclass
class RefMatteConfig(MattingBuilderConfig):
    """``setting``: ``"expression"`` (all expressions, TDM's use) or ``"keyword"`` (needs a ``keyword`` key)."""

    setting: str = "expression"
    splits: Sequence[str] = REFMATTE_SPLITS


class RefMatte(MattingBuilder):
    """RefMatte train/test: one row per instance (alpha PNG), texts = the instance's expressions."""

    BUILDER_CONFIG_CLASS = RefMatteConfig
    SOURCE = SOURCE

    def collect_rows(self, root: Path) -> Dict[str, List[Dict[str, Any]]]:
        if self.config.setting not in ("expression", "keyword"):
            raise ValueError(f"setting must be 'expression' or 'keyword', got {self.config.setting!r}")
        base = first_existing(
            [root / "RefMatte" / "RefMatte", root / "RefMatte", root],
            "RefMatte folder holding train/ or test/",
            is_dir=True,
        )
        present = [s for s in self.config.splits if (base / s).is_dir()]
        if not present:
            raise DatasetLayoutError(
                f"no RefMatte split folder {list(self.config.splits)} under {base}; found {sorted(p.name for p in base.iterdir())}"
            )
        splits = {}
        for split in present:
            folder = base / split
            label_path = find_label_file(folder, f"refmatte_{split}_label.json")
            splits[split] = rows_from_label_json(
                read_json(label_path, "RefMatte label"),
                label_path,
                require_dir(folder / "img", f"RefMatte {split} image"),
                require_dir(folder / "mask", f"RefMatte {split} mask"),
                SOURCE,
                setting=self.config.setting,
            )
        return splits


def load_refmatte(
    data_dir: PathLike,
    split: Optional[str] = None,
    setting: str = "expression",
    cache_dir: Optional[PathLike] = None,
) -> Union[datasets.Dataset, datasets.DatasetDict]:
    """Loads RefMatte from ``data_dir`` (the unzipped archive); all present splits unless ``split`` is given."""
    return load_with_builder(
        RefMatte,
        data_dir,
        split=split,
        cache_dir=cache_dir,
        **({} if split is None else {"splits": (split,)}),
        setting=setting,
    )
