"""Writers of tiny fixture copies of each dataset in its documented layout (real name patterns and JSON schemas).

Every image and alpha encodes its own id in its pixel values (``code``), so tests can check that loaders pair
images, alphas and texts correctly.
"""

import json
import pickle
from pathlib import Path

import numpy as np
from PIL import Image

SIZE = (24, 16)  # (width, height)


def write_image(path: Path, code: int, size=SIZE) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    array = np.full((size[1], size[0], 3), (code, 255 - code, 7), np.uint8)
    fmt = "JPEG" if path.suffix == ".jpg" else "PNG"
    Image.fromarray(array).save(path, format=fmt, quality=100)


def write_alpha(path: Path, code: int, size=SIZE) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    array = np.zeros((size[1], size[0]), np.uint8)
    array[:, : size[0] // 2] = code  # a soft left half: the value identifies the instance
    Image.fromarray(array).save(path)


def image_code(image) -> int:
    return int(np.asarray(image.convert("RGB"))[..., 0].mean().round())


def alpha_code(alpha) -> int:
    return int(np.asarray(alpha)[0, 0])


def make_refmatte(root: Path, split: str, instances_per_image=(2, 1), nested=True) -> dict:
    """``RefMatte/RefMatte/<split>/{img,mask}`` + ``refmatte_<split>_label.json``; returns the label dict."""
    base = (root / "RefMatte" / "RefMatte" if nested else root) / split
    labels = {}
    for i, count in enumerate(instances_per_image):
        image_name = f"rim_{split}_{i:04x}00a8"
        write_image(base / "img" / f"{image_name}.jpg", 40 * (i + 1))
        for k in range(1, count + 1):
            stem = f"{image_name}_{k}"
            write_alpha(base / "mask" / f"{stem}.png", 40 * (i + 1) + k)
            labels[stem] = {
                "image_name": image_name,
                "expressions": [
                    f"{stem} keyword",
                    f"{stem} basic",
                    f"{stem} absolute",
                    f"{stem} relative",
                ],
            }
    (base / f"refmatte_{split}_label.json").write_text(json.dumps(labels))
    return labels


def make_rw100(root: Path) -> dict:
    base = root / "RefMatte_RW_100"
    labels = {}
    for i, count in enumerate((2, 1, 1)):
        image_name = f"rw_{i:03d}"
        write_image(base / "image" / f"{image_name}.jpg", 30 * (i + 1))
        for k in range(1, count + 1):
            stem = f"{image_name}_{k}"
            write_alpha(base / "mask" / f"{stem}.png", 30 * (i + 1) + k)
            labels[stem] = {
                "image_name": image_name,
                "expressions": [f"{stem} e{j}" for j in range(4)],
            }
    (base / "refmatte_rw100_label.json").write_text(json.dumps(labels))
    (base / "eval_index_expression.json").write_text(json.dumps(dict.fromkeys(labels, 0)))
    return labels


def make_p3m(root: Path, validation_folder=True) -> None:
    base = root / "P3M-10k"
    for i in range(3):
        write_image(base / "train" / "blurred_image" / f"p_0714{i:04d}.jpg", 20 + i)
        write_alpha(base / "train" / "mask" / f"p_0714{i:04d}.png", 20 + i)
    val = base / "validation" if validation_folder else base
    for name, image_folder, offset in (
        ("P3M-500-P", "blurred_image", 100),
        ("P3M-500-NP", "original_image", 150),
    ):
        for i in range(2):
            stem = f"p_{offset + i:08d}"
            write_image(val / name / image_folder / f"{stem}.jpg", offset + i)
            write_alpha(val / name / "mask" / f"{stem}.png", offset + i)
            write_alpha(val / name / "trimap" / f"{stem}.png", 128)


def make_am2k(root: Path) -> None:
    base = root / "AM-2k"
    for split, count, offset in (("train", 3, 10), ("validation", 2, 60)):
        for i in range(count):
            stem = f"m_{offset + i:08x}"
            write_image(base / split / "original" / f"{stem}.jpg", offset + i)
            write_alpha(base / split / "mask" / f"{stem}.png", offset + i)
            if split == "validation":
                write_alpha(base / split / "trimap" / f"{stem}.png", 128)


def rle_counts_to_string(counts) -> str:
    """COCO's compressed RLE encoding (the inverse of the loader's decoder), for fixtures."""
    out = []
    for i, value in enumerate(counts):
        x = value - counts[i - 2] if i > 2 else value
        more = True
        while more:
            c = x & 0x1F
            x >>= 5
            more = not (x == 0 and not (c & 0x10)) and not (x == -1 and (c & 0x10))
            if more:
                c |= 0x20
            out.append(chr(c + 48))
    return "".join(out)


def mask_to_rle_counts(mask: np.ndarray) -> list:
    flat = mask.T.reshape(-1)
    counts, current, run = [], 0, 0
    for value in flat:
        if value != current:
            counts.append(run)
            current, run = value, 0
        run += 1
    counts.append(run)
    return counts


def make_refcoco(root: Path) -> dict:
    """refer layout: refs(unc).p (protocol-2 pickle), instances.json (polygon + RLE masks), train2014 images."""
    width, height = SIZE
    images = [
        {
            "id": 9,
            "file_name": "COCO_train2014_000000000009.jpg",
            "width": width,
            "height": height,
        },
        {
            "id": 25,
            "file_name": "COCO_train2014_000000000025.jpg",
            "width": width,
            "height": height,
        },
    ]
    for code, info in zip((50, 90), images):
        write_image(
            root / "images" / "mscoco" / "images" / "train2014" / info["file_name"],
            code,
        )
    rle_mask = np.zeros((height, width), np.uint8)
    rle_mask[2:10, 12:20] = 1
    annotations = [
        {
            "id": 101,
            "image_id": 9,
            "category_id": 1,
            "bbox": [2, 2, 8, 8],
            "area": 64.0,
            "iscrowd": 0,
            "segmentation": [[2, 2, 10, 2, 10, 10, 2, 10]],
        },
        {
            "id": 102,
            "image_id": 9,
            "category_id": 18,
            "bbox": [12, 2, 8, 8],
            "area": 64.0,
            "iscrowd": 0,
            "segmentation": {
                "size": [height, width],
                "counts": rle_counts_to_string(mask_to_rle_counts(rle_mask)),
            },
        },
        {
            "id": 103,
            "image_id": 25,
            "category_id": 1,
            "bbox": [0, 0, 4, 4],
            "area": 16.0,
            "iscrowd": 0,
            "segmentation": {
                "size": [height, width],
                "counts": mask_to_rle_counts(np.pad(np.ones((4, 4), np.uint8), ((0, height - 4), (0, width - 4)))),
            },
        },
    ]
    instances = {
        "images": images,
        "annotations": annotations,
        "categories": [{"id": 1, "name": "person"}, {"id": 18, "name": "dog"}],
    }
    refs = []
    for ref_id, (ann_id, image_id, cat, split) in enumerate(
        ((101, 9, 1, "train"), (102, 9, 18, "train"), (103, 25, 1, "testA")), start=1
    ):
        refs.append(
            {
                "ref_id": ref_id,
                "ann_id": ann_id,
                "image_id": image_id,
                "category_id": cat,
                "split": split,
                "sent_ids": [10 * ref_id, 10 * ref_id + 1],
                "file_name": f"COCO_train2014_{image_id:012d}_{ann_id}.jpg",
                "sentences": [
                    {
                        "sent_id": 10 * ref_id + j,
                        "sent": f"ref {ref_id} sentence {j}",
                        "raw": f"Ref {ref_id} Sentence {j}!",
                        "tokens": ["ref", str(ref_id)],
                    }
                    for j in range(2)
                ],
            }
        )
    folder = root / "refcoco"
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "refs(unc).p", "wb") as handle:
        pickle.dump(refs, handle, protocol=2)
    (folder / "instances.json").write_text(json.dumps(instances))
    return {"refs": refs, "instances": instances, "rle_mask": rle_mask}


def make_folder(root: Path, stems=("a", "b", "c"), with_splits=False) -> dict:
    captions = {}
    for split in ("train", "test") if with_splits else (None,):
        base = root / split if split else root
        for i, stem in enumerate(stems):
            write_image(base / "images" / f"{stem}.png", 70 + i)
            write_alpha(base / "alphas" / f"{stem}.png", 70 + i)
            captions[stem] = f"caption of {stem}"
    path = root / "captions.json"
    path.write_text(json.dumps(captions))
    return captions
