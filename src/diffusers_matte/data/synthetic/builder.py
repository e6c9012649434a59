# Copyright 2026 The diffusers-matte authors. Licensed under the Apache License, Version 2.0.
"""The :mod:`datasets` builder of the synthetic set, :func:`load_synthetic_matting`, and its command line."""

from __future__ import annotations

import argparse
import io
import json
import time
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

import datasets
import numpy as np
from PIL import Image

from ..common import MATTING_FEATURES, make_row
from .expressions import absent_expressions, paraphrase
from .scenes import Scene, SceneLayout, generate_scene
from .shapes import SOURCE, TEXT_TYPES

SPLIT_IDS = {"train": 0, "test": 1}


# The no-target rows draw from their own stream of `[seed, split, index, NO_TARGET_STREAM]`, not from the scene's:
# asking for them adds rows and changes none of the others.
NO_TARGET_STREAM = 1


IMAGE_FORMATS = {
    "png": ("PNG", {"compress_level": 1}),
    "jpeg": ("JPEG", {"quality": 95}),
}


def _encode(array: np.ndarray, image_format: str = "png") -> bytes:
    if image_format not in IMAGE_FORMATS:
        raise ValueError(f"image_format must be one of {sorted(IMAGE_FORMATS)}, got {image_format!r}")
    name, options = IMAGE_FORMATS[image_format]
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format=name, **options)
    return buffer.getvalue()


def scene_rows(
    seed: int,
    split: str,
    index: int,
    size: int = 256,
    image_format: str = "png",
    layout: Optional[SceneLayout] = None,
    no_target_share: float = 0.0,
) -> List[Dict[str, Any]]:
    """The rows (one per instance, :data:`~diffusers_matte.data.common.MATTING_FEATURES`) of one scene.

    ``image_format`` is ``"png"`` (lossless, about 110 KB per 256x256 image) or ``"jpeg"`` (quality 95, about
    17 KB, like the JPEG photos of the real sets). Alphas are always PNG. With probability ``no_target_share`` the
    scene also gets a last row whose expressions name none of its instances (:func:`absent_expressions`), with an
    all-zero alpha and ``has_target=False``; the other rows are the same whatever the share.
    """
    _check_share(no_target_share)
    scene = generate_scene([seed, SPLIT_IDS[split], index], size=size, layout=layout)
    image_id = f"synthetic_{split}_{index:07d}"
    image = {"bytes": _encode(scene.image, image_format), "path": None}
    rows = []
    for k, inst in enumerate(scene.instances):
        alpha = np.clip(inst.alpha * 255.0 + 0.5, 0, 255).astype(np.uint8)
        meta = {
            "category": inst.category,
            "color": inst.color,
            "size": inst.size,
            "material": inst.material,
            "blurry": inst.blurry,
            "depth": k,
            "num_instances": len(scene.instances),
        }
        rows.append(
            make_row(
                image,
                {"bytes": _encode(alpha), "path": None},
                inst.texts,
                f"{image_id}_{k + 1}",
                image_id,
                SOURCE,
                text_types=TEXT_TYPES,
                meta=meta,
            )
        )
    rng = np.random.default_rng([seed, SPLIT_IDS[split], index, NO_TARGET_STREAM])
    if rng.random() < no_target_share:
        rows.append(_no_target_row(scene, image, image_id, rng, layout or SceneLayout()))
    return rows


def _no_target_row(
    scene: Scene, image: Dict[str, Any], image_id: str, rng: np.random.Generator, layout: SceneLayout
) -> Dict[str, Any]:
    size = scene.image.shape[0]
    pairs = absent_expressions(scene.instances, size, rng)
    texts = [paraphrase(text, rng) if layout.paraphrase else text for text, _ in pairs]
    return make_row(
        image,
        {"bytes": _encode(np.zeros((size, size), np.uint8)), "path": None},
        texts,
        f"{image_id}_none",
        image_id,
        SOURCE,
        text_types=[kind for _, kind in pairs],
        meta={"num_instances": len(scene.instances)},
        has_target=False,
    )


def _check_share(no_target_share: float) -> None:
    if not 0.0 <= no_target_share <= 1.0:
        raise ValueError(f"no_target_share must be in [0, 1], got {no_target_share!r}")


@dataclass
class SyntheticMattingConfig(datasets.BuilderConfig):
    """Builder parameters; each combination is cached separately."""

    seed: int = 0
    num_train: int = 2000
    num_test: int = 200
    image_size: int = 256
    image_format: str = "png"
    layout: SceneLayout = SceneLayout()
    no_target_share: float = 0.0
    # Part of the `datasets` cache key: bump it whenever generation changes, so stale caches are not reused
    # (1.3.0: the `has_target` column).
    version: datasets.Version = datasets.Version("1.3.0")


class SyntheticMatting(datasets.GeneratorBasedBuilder):
    """The procedural referring-matting set as a :class:`datasets.GeneratorBasedBuilder` (splits train, test)."""

    BUILDER_CONFIG_CLASS = SyntheticMattingConfig
    BUILDER_CONFIGS = [SyntheticMattingConfig(name="default")]

    def _info(self) -> datasets.DatasetInfo:
        return datasets.DatasetInfo(description=__doc__.split("\n\n")[0], features=MATTING_FEATURES)

    def _split_generators(self, dl_manager):
        cfg = self.config
        # An empty split cannot be materialised by `datasets`: a split asked with 0 images is left out.
        counts = {
            datasets.Split.TRAIN: cfg.num_train,
            datasets.Split.TEST: cfg.num_test,
        }
        return [
            datasets.SplitGenerator(name=name, gen_kwargs={"split": str(name), "count": count})
            for name, count in counts.items()
            if count > 0
        ]

    def _generate_examples(self, split: str, count: int) -> Iterator[Tuple[str, Dict[str, Any]]]:
        cfg = self.config
        for index in range(count):
            rows = scene_rows(
                cfg.seed, split, index, cfg.image_size, cfg.image_format, cfg.layout, cfg.no_target_share
            )
            for row in rows:
                yield row["instance_id"], row


def load_synthetic_matting(
    num_train: int = 2000,
    num_test: int = 200,
    seed: int = 0,
    image_size: int = 256,
    cache_dir: Optional[str] = None,
    image_format: str = "png",
    layout: Optional[SceneLayout] = None,
    no_target_share: float = 0.0,
) -> datasets.DatasetDict:
    """Generates (or loads from the ``datasets`` cache) the synthetic set: ``DatasetDict`` with train and test.

    Args:
        num_train / num_test: number of *images* per split; each gives 2 to 4 rows (one per instance), and maybe
            a no-target row.
        seed: base seed; image ``i`` of a split is drawn from ``[seed, split id, i]``, so any subset is reproducible.
        image_size: side of the square images.
        cache_dir: ``datasets`` cache folder (default: the Hugging Face cache).
        image_format: ``"png"`` (lossless) or ``"jpeg"`` (quality 95, about 6x smaller).
        layout: number and size of the objects, and wording (default :class:`SceneLayout`).
        no_target_share: share of the images that also get a row whose expressions (up to one per kind) name none
            of its instances, with an all-zero alpha and ``has_target=False`` (see :func:`scene_rows`). An image
            has 2 to ``layout.max_instances`` instance rows, so the share of rows is smaller: with 2.5 instances per
            image on average, 0.5 gives about one no-target row in six. 0 (the default) gives the set as before.
    """
    if num_train < 0 or num_test < 0:
        raise ValueError(f"num_train and num_test must be >= 0, got {num_train} and {num_test}")
    if image_size < 64:
        raise ValueError(f"image_size must be at least 64, got {image_size}")
    if image_format not in IMAGE_FORMATS:
        raise ValueError(f"image_format must be one of {sorted(IMAGE_FORMATS)}, got {image_format!r}")
    _check_share(no_target_share)
    builder = SyntheticMatting(
        cache_dir=cache_dir,
        config_name="default",
        seed=seed,
        num_train=num_train,
        num_test=num_test,
        image_size=image_size,
        image_format=image_format,
        layout=layout or SceneLayout(),
        no_target_share=float(no_target_share),
    )
    builder.download_and_prepare()
    return builder.as_dataset()


# The scene layout's number fields, as flags of the command line.
LAYOUT_FLAGS = {
    "object_scale": "multiplies the object radii",
    "thin_weight": "sampling weight of each thin category (1: as any other)",
    "min_visible": "share of each instance's alpha that must stay visible (higher: less occlusion)",
    "transparent_weight": "sampling weight of each transparent category (glass, bubble, smoke, veil)",
    "clear_share": "probability that a solid shape is drawn semi-transparent",
}


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(description="Generate the synthetic referring-matting set and save it.")
    parser.add_argument(
        "--output_dir",
        required=True,
        help="where DatasetDict.save_to_disk writes the set",
    )
    parser.add_argument("--num_train", type=int, default=2000, help="number of training images")
    parser.add_argument("--num_test", type=int, default=200, help="number of test images")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--image_size", type=int, default=256)
    parser.add_argument(
        "--image_format",
        choices=sorted(IMAGE_FORMATS),
        default="png",
        help="jpeg: ~6x smaller",
    )
    defaults = SceneLayout()
    parser.add_argument("--max_instances", type=int, default=defaults.max_instances)
    for name, help in LAYOUT_FLAGS.items():
        parser.add_argument(f"--{name}", type=float, default=getattr(defaults, name), help=help)
    parser.add_argument(
        "--paraphrase",
        action="store_true",
        help="vary the expressions' wording with synonyms",
    )
    parser.add_argument(
        "--no_target_share",
        type=float,
        default=0.0,
        help="share of images that also get a row whose expressions name nothing in them (all-zero alpha)",
    )
    parser.add_argument(
        "--cache_dir",
        default=None,
        help="datasets cache folder (default: the HF cache)",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --output_dir")
    args = parser.parse_args(argv)
    output = Path(args.output_dir)
    if output.exists() and any(output.iterdir()) and not args.overwrite:
        raise SystemExit(f"{output} exists and is not empty; pass --overwrite to replace it")
    start = time.perf_counter()
    dataset = load_synthetic_matting(
        args.num_train,
        args.num_test,
        args.seed,
        args.image_size,
        args.cache_dir,
        args.image_format,
        SceneLayout(**{field.name: getattr(args, field.name) for field in fields(SceneLayout)}),
        args.no_target_share,
    )
    elapsed = time.perf_counter() - start
    dataset.save_to_disk(str(output))
    summary = {}
    for split, ds in dataset.items():
        no_target = sum(not flag for flag in ds["has_target"])
        summary[split] = {"instances": len(ds) - no_target, "images": len(set(ds["image_id"]))}
        if no_target:
            summary[split]["no_target_rows"] = no_target
    print(
        json.dumps(
            {
                "output_dir": str(output),
                "generation_seconds": round(elapsed, 1),
                **summary,
            },
            indent=1,
        )
    )
    print(f"load it with: datasets.load_from_disk({str(output)!r})")
