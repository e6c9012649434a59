# Copyright 2026 The diffusers-matte authors. Licensed under the Apache License, Version 2.0.
"""RefCOCO (UNC splits) loader, with pseudo-alphas (paper Sec. 4.1) or plain masks as the ``alpha`` column.

Layout expected by the ``refer`` API (lichengunc/refer), which this loader reads without needing refer.py::

    <data_dir>/refcoco/refs(unc).p          Python-2 pickle: list of refs (ref_id, ann_id, image_id, split, sentences)
    <data_dir>/refcoco/instances.json       COCO annotations (images, annotations, categories)
    <data_dir>/images/mscoco/images/train2014/COCO_train2014_<12 digits>.jpg
    <data_dir>/refcoco/pseudo_alpha/<ann_id>.png      written by training/make_refcoco_alpha.py

The image folder may also be ``<data_dir>/train2014`` or given as ``image_dir``. One row per ref; ``texts`` are the
cleaned ``sent`` of all its sentences. ``alpha_source="mask"`` uses the binary annotation mask instead of a
pseudo-alpha (decoded from polygons or RLE without pycocotools).

Every RefCOCO ref names one object, so every row has ``has_target=True``. The same column serves gRefCOCO's
no-target expressions (the refs it marks ``no_target``): such a ref is a row with an all-zero alpha and
``has_target=False`` (``make_row(..., has_target=False)``), which training (an all-background region map) and the
evaluation harness (grounding-score AUROC, metrics on rows with a target only) handle. This loader reads neither
those refs nor gRefCOCO's multi-object ones.
"""

from __future__ import annotations

import io
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence, Union

import datasets
import numpy as np
from PIL import Image, ImageDraw

from .common import (
    DatasetLayoutError,
    MattingBuilder,
    MattingBuilderConfig,
    PathLike,
    first_existing,
    load_with_builder,
    make_row,
    read_json,
    require_dir,
    require_file,
)

SOURCE = "refcoco"
REFCOCO_SPLITS = ("train", "val", "testA", "testB")
REF_KEYS = ("ref_id", "ann_id", "image_id", "split", "sentences")


# ----------------------------------------------------------------------------------------------- COCO masks


def rle_string_to_counts(encoded: Union[str, bytes]) -> List[int]:
    """Decodes COCO's compressed RLE string (5-bit groups, 48-offset characters, delta from two runs back)."""
    if isinstance(encoded, bytes):
        encoded = encoded.decode("ascii")
    counts: List[int] = []
    pos = 0
    while pos < len(encoded):
        value, shift, more = 0, 0, True
        while more:
            char = ord(encoded[pos]) - 48
            value |= (char & 0x1F) << (5 * shift)
            more = bool(char & 0x20)
            pos += 1
            shift += 1
            if not more and char & 0x10:
                value |= -1 << (5 * shift)  # sign-extend
        if len(counts) > 2:
            value += counts[-2]
        counts.append(value)
    return counts


def rle_to_mask(counts: Sequence[int], height: int, width: int) -> np.ndarray:
    """Runs (alternating 0 and 1, starting with 0) in column-major order to a uint8 ``(height, width)`` mask."""
    flat = np.zeros(height * width, np.uint8)
    pos = 0
    for k, run in enumerate(counts):
        if k % 2:
            flat[pos : pos + run] = 1
        pos += run
    if pos != height * width:
        raise ValueError(f"RLE covers {pos} pixels, expected {height}x{width}={height * width}")
    return flat.reshape(width, height).T.copy()


def segmentation_to_mask(segmentation: Any, height: int, width: int) -> np.ndarray:
    """A COCO ``segmentation`` (polygon list, uncompressed or compressed RLE) as a uint8 0/1 mask.

    Polygons are filled with PIL (pycocotools rasterises edges slightly differently); parts are united, as
    ``REFER.getMask`` sums them and casts to uint8.
    """
    if isinstance(segmentation, list):
        canvas = Image.new("L", (width, height), 0)
        draw = ImageDraw.Draw(canvas)
        for polygon in segmentation:
            if len(polygon) >= 6:
                draw.polygon([float(v) for v in polygon], fill=1, outline=1)
        return np.asarray(canvas, np.uint8)
    if isinstance(segmentation, dict) and "counts" in segmentation:
        counts = segmentation["counts"]
        if isinstance(counts, (str, bytes)):
            counts = rle_string_to_counts(counts)
        size = segmentation.get("size", [height, width])
        return rle_to_mask(counts, int(size[0]), int(size[1]))
    raise ValueError(f"unsupported COCO segmentation of type {type(segmentation).__name__}")


def _png_bytes(mask: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(mask).save(buffer, format="PNG")
    return buffer.getvalue()


# ----------------------------------------------------------------------------------------------- refs and layout


def load_refs(path: Path) -> List[Dict[str, Any]]:
    """Reads ``refs(<split_by>).p`` (a Python-2 pickle) and checks the keys of its records."""
    require_file(path, "RefCOCO refs pickle")
    try:
        with open(path, "rb") as handle:
            refs = pickle.load(handle, encoding="latin1")
    except Exception as error:  # noqa: BLE001 - any unpickling failure means an unreadable file
        raise DatasetLayoutError(f"could not read the refs pickle {path}: {error}") from error
    if not isinstance(refs, list) or not refs or not isinstance(refs[0], dict):
        raise DatasetLayoutError(f"{path} should hold a non-empty list of ref dicts, got {type(refs).__name__}")
    missing = set(REF_KEYS) - set(refs[0])
    if missing:
        raise DatasetLayoutError(f"{path}: refs need the keys {list(REF_KEYS)}; the first has {sorted(refs[0])}")
    return refs


def ref_in_split(ref_split: str, split: str) -> bool:
    """``refer.py``'s rule: testA/testB match by their last letter (so ``testAB`` counts for both)."""
    if split in ("testA", "testB", "testC"):
        return split[-1] in ref_split
    return ref_split == split


@dataclass
class RefCOCOConfig(MattingBuilderConfig):
    """``dataset``/``split_by``: the refer folder and split file; ``alpha_source``: ``"pseudo"`` or ``"mask"``."""

    dataset: str = "refcoco"
    split_by: str = "unc"
    splits: Sequence[str] = ("train",)
    alpha_source: str = "pseudo"
    alpha_dir: Optional[str] = None
    image_dir: Optional[str] = None


def find_image_dir(root: Path, image_dir: Optional[PathLike]) -> Path:
    if image_dir is not None:
        return require_dir(Path(image_dir), "COCO train2014 image")
    return first_existing(
        [
            root / "images" / "mscoco" / "images" / "train2014",
            root / "train2014",
            root / "images" / "train2014",
        ],
        "COCO train2014 image folder (or pass image_dir=...)",
    )


def default_alpha_dir(root: Path, dataset: str = "refcoco") -> Path:
    return root / dataset / "pseudo_alpha"


class RefCOCO(MattingBuilder):
    """RefCOCO/RefCOCO+/RefCOCOg via the refer layout: one row per ref, texts = its sentences."""

    BUILDER_CONFIG_CLASS = RefCOCOConfig
    SOURCE = SOURCE

    def collect_rows(self, root: Path) -> Dict[str, List[Dict[str, Any]]]:
        cfg = self.config
        if cfg.alpha_source not in ("pseudo", "mask"):
            raise ValueError(f"alpha_source must be 'pseudo' or 'mask', got {cfg.alpha_source!r}")
        refs_dir = require_dir(root / cfg.dataset, f"{cfg.dataset} annotation")
        refs = load_refs(refs_dir / f"refs({cfg.split_by}).p")
        instances = read_json(refs_dir / "instances.json", f"{cfg.dataset} instances")
        missing = {"images", "annotations", "categories"} - set(instances)
        if missing:
            raise DatasetLayoutError(
                f"{refs_dir / 'instances.json'} needs images, annotations, categories; has {sorted(instances)}"
            )
        images = {img["id"]: img for img in instances["images"]}
        anns = {ann["id"]: ann for ann in instances["annotations"]}
        categories = {cat["id"]: cat.get("name", str(cat["id"])) for cat in instances["categories"]}
        image_dir = find_image_dir(root, cfg.image_dir)
        alpha_dir = Path(cfg.alpha_dir) if cfg.alpha_dir else default_alpha_dir(root, cfg.dataset)
        if cfg.alpha_source == "pseudo":
            require_dir(
                alpha_dir,
                "pseudo-alpha (run training/make_refcoco_alpha.py, or use alpha_source='mask')",
            )
        splits = {}
        for split in cfg.splits:
            rows = [
                self._row(ref, images, anns, categories, image_dir, alpha_dir)
                for ref in refs
                if ref_in_split(str(ref["split"]), split)
            ]
            if not rows:
                found = sorted({str(r["split"]) for r in refs})
                raise DatasetLayoutError(f"no ref of split {split!r} in refs({cfg.split_by}).p; splits found: {found}")
            splits[split] = rows
        return splits

    def _row(self, ref, images, anns, categories, image_dir: Path, alpha_dir: Path) -> Dict[str, Any]:
        if ref["ann_id"] not in anns or ref["image_id"] not in images:
            raise DatasetLayoutError(
                f"ref {ref['ref_id']}: ann_id {ref['ann_id']} or image_id {ref['image_id']} is not in instances.json"
            )
        info = images[ref["image_id"]]
        file_name = info.get("file_name") or f"COCO_train2014_{int(ref['image_id']):012d}.jpg"
        ann = anns[ref["ann_id"]]
        if self.config.alpha_source == "pseudo":
            alpha: Any = str(alpha_dir / f"{ref['ann_id']}.png")
        else:
            mask = segmentation_to_mask(ann["segmentation"], int(info["height"]), int(info["width"]))
            alpha = {"bytes": _png_bytes(mask * 255), "path": None}
        texts = [s.get("sent", s.get("raw", "")) for s in ref["sentences"]]
        meta = {
            "ann_id": ref["ann_id"],
            "category": categories.get(ref.get("category_id", ann.get("category_id")), ""),
            "bbox": ann.get("bbox"),
            "ref_split": ref["split"],
            "alpha_source": self.config.alpha_source,
        }
        return make_row(
            str(image_dir / file_name),
            alpha,
            texts,
            str(ref["ref_id"]),
            str(ref["image_id"]),
            SOURCE,
            meta=meta,
        )


def load_refcoco(
    data_dir: PathLike,
    splits: Iterable[str] = ("train",),
    alpha_source: str = "pseudo",
    alpha_dir: Optional[PathLike] = None,
    image_dir: Optional[PathLike] = None,
    dataset: str = "refcoco",
    split_by: str = "unc",
    cache_dir: Optional[PathLike] = None,
) -> Union[datasets.Dataset, datasets.DatasetDict]:
    """Loads RefCOCO refs of ``splits`` from the refer layout at ``data_dir`` (a ``DatasetDict`` keyed by split)."""
    splits = tuple(splits)
    unknown = set(splits) - set(REFCOCO_SPLITS)
    if unknown:
        raise ValueError(f"unknown RefCOCO split(s) {sorted(unknown)}; choose from {list(REFCOCO_SPLITS)}")
    return load_with_builder(
        RefCOCO,
        data_dir,
        cache_dir=cache_dir,
        splits=splits,
        alpha_source=alpha_source,
        alpha_dir=None if alpha_dir is None else str(Path(alpha_dir).resolve()),
        image_dir=None if image_dir is None else str(Path(image_dir).resolve()),
        dataset=dataset,
        split_by=split_by,
    )
