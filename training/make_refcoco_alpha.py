# Copyright 2026 The diffusers-matte authors. Licensed under the Apache License, Version 2.0.
"""Pseudo-alphas for RefCOCO (paper Sec. 4.1): mask -> trimap by morphology (kernel 15) -> ViTMatte.

"For RefCOCO, we first generate the pseudo trimap according to the mask annotations using morphological operations,
then use Yao et al. (2024a) [ViTMatte] to obtain alpha annotations." The paper does not name the checkpoint; the
default is ``hustvl/vitmatte-small-composition-1k``. ViTMatte's prediction is kept in the unknown band only; the
trimap's known foreground and background are written as 255 and 0.

Writes ``<output_dir>/<ann_id>.png`` (default ``<data_dir>/refcoco/pseudo_alpha``, where ``load_refcoco`` looks).
Existing files are kept unless ``--overwrite``, so an interrupted run can simply be restarted.

Example::

    python training/make_refcoco_alpha.py --data_dir /data/refer --splits train
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm
from transformers import VitMatteForImageMatting, VitMatteImageProcessor

from diffusers_matte.data.common import read_json
from diffusers_matte.data.refcoco import (
    REFCOCO_SPLITS,
    default_alpha_dir,
    find_image_dir,
    load_refs,
    ref_in_split,
    segmentation_to_mask,
)
from diffusers_matte.data.targets import MORPHOLOGY_KERNEL_SIZE, trimap_from_mask

DEFAULT_MODEL = "hustvl/vitmatte-small-composition-1k"


def predict_alpha(image: Image.Image, trimap: np.ndarray, model, processor) -> np.ndarray:
    """ViTMatte alpha (uint8, image size) inside the trimap's unknown band; known regions are copied from the trimap."""
    inputs = processor(
        images=image.convert("RGB"),
        trimaps=Image.fromarray(trimap),
        return_tensors="pt",
    )
    inputs = {k: v.to(model.device, model.dtype) for k, v in inputs.items()}
    with torch.no_grad():
        alphas = model(**inputs).alphas  # padded to a multiple of 32
    height, width = trimap.shape
    alpha = alphas[0, 0, :height, :width].float().clamp(0, 1).cpu().numpy()
    alpha = np.where(trimap == 255, 1.0, np.where(trimap == 0, 0.0, alpha))
    return (alpha * 255.0 + 0.5).astype(np.uint8)


def annotations_to_process(data_dir: Path, splits: Sequence[str], dataset: str, split_by: str) -> List[Dict]:
    """The annotations referred to by the refs of ``splits`` (each ``ann_id`` once), with their image info."""
    refs = load_refs(data_dir / dataset / f"refs({split_by}).p")
    instances = read_json(data_dir / dataset / "instances.json", f"{dataset} instances")
    anns = {ann["id"]: ann for ann in instances["annotations"]}
    images = {img["id"]: img for img in instances["images"]}
    chosen: Dict[int, Dict] = {}
    for ref in refs:
        if any(ref_in_split(str(ref["split"]), split) for split in splits) and ref["ann_id"] not in chosen:
            ann = anns[ref["ann_id"]]
            chosen[ref["ann_id"]] = {"ann": ann, "image": images[ann["image_id"]]}
    return list(chosen.values())


def make_pseudo_alphas(
    data_dir: Path,
    model,
    processor,
    splits: Sequence[str] = ("train",),
    output_dir: Optional[Path] = None,
    image_dir: Optional[Path] = None,
    kernel_size: int = MORPHOLOGY_KERNEL_SIZE,
    dataset: str = "refcoco",
    split_by: str = "unc",
    overwrite: bool = False,
) -> Dict[str, int]:
    """Writes one pseudo-alpha PNG per annotation; returns counts of written and kept files."""
    output_dir = output_dir or default_alpha_dir(data_dir, dataset)
    output_dir.mkdir(parents=True, exist_ok=True)
    image_dir = find_image_dir(data_dir, image_dir)
    counts = {"written": 0, "kept": 0}
    for item in tqdm(
        annotations_to_process(data_dir, splits, dataset, split_by),
        desc="pseudo-alpha",
        unit="ann",
    ):
        ann, info = item["ann"], item["image"]
        target = output_dir / f"{ann['id']}.png"
        if target.exists() and not overwrite:
            counts["kept"] += 1
            continue
        image_path = image_dir / (info.get("file_name") or f"COCO_train2014_{int(info['id']):012d}.jpg")
        if not image_path.is_file():
            raise FileNotFoundError(f"image of annotation {ann['id']} not found: {image_path}")
        mask = segmentation_to_mask(ann["segmentation"], int(info["height"]), int(info["width"]))
        trimap = trimap_from_mask(mask, kernel_size)
        Image.fromarray(predict_alpha(Image.open(image_path), trimap, model, processor)).save(target)
        counts["written"] += 1
    return counts


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--data_dir",
        required=True,
        help="refer layout root (holding refcoco/ and images/)",
    )
    parser.add_argument("--splits", nargs="+", default=["train"], choices=list(REFCOCO_SPLITS))
    parser.add_argument("--output_dir", default=None, help="default: <data_dir>/refcoco/pseudo_alpha")
    parser.add_argument(
        "--image_dir",
        default=None,
        help="COCO train2014 folder if not in the refer layout",
    )
    parser.add_argument("--model_name_or_path", default=DEFAULT_MODEL)
    parser.add_argument("--kernel_size", type=int, default=MORPHOLOGY_KERNEL_SIZE)
    parser.add_argument("--dataset", default="refcoco")
    parser.add_argument("--split_by", default="unc")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--overwrite", action="store_true", help="recompute alphas that already exist")
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> Dict[str, int]:
    args = parse_args(argv)
    processor = VitMatteImageProcessor.from_pretrained(args.model_name_or_path)
    model = VitMatteForImageMatting.from_pretrained(args.model_name_or_path).to(args.device).eval()
    counts = make_pseudo_alphas(
        Path(args.data_dir),
        model,
        processor,
        splits=args.splits,
        output_dir=None if args.output_dir is None else Path(args.output_dir),
        image_dir=None if args.image_dir is None else Path(args.image_dir),
        kernel_size=args.kernel_size,
        dataset=args.dataset,
        split_by=args.split_by,
        overwrite=args.overwrite,
    )
    print(f"pseudo-alphas: {counts['written']} written, {counts['kept']} kept")
    return counts


if __name__ == "__main__":
    main()
