# Copyright 2026 The diffusers-matte authors. Licensed under the Apache License, Version 2.0.
"""What every loader shares: the row schema, file look-ups with clear errors, and builder preparation."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Union

import datasets

logger = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".JPG", ".JPEG", ".PNG")

#: The one row schema of every loader (see the package docstring of :mod:`diffusers_matte.data`).
MATTING_FEATURES = datasets.Features(
    {
        "image": datasets.Image(),
        "alpha": datasets.Image(mode="L"),
        "texts": datasets.List(datasets.Value("string")),
        "text_types": datasets.List(datasets.Value("string")),
        "instance_id": datasets.Value("string"),
        "image_id": datasets.Value("string"),
        "source": datasets.Value("string"),
        "meta": datasets.Value("string"),
        "has_target": datasets.Value("bool"),
    }
)

PathLike = Union[str, Path]


class DatasetLayoutError(FileNotFoundError):
    """A dataset folder does not have the documented layout; the message names what was expected and found."""


def make_row(
    image: Any,
    alpha: Any,
    texts: Sequence[str],
    instance_id: str,
    image_id: str,
    source: str,
    text_types: Optional[Sequence[str]] = None,
    meta: Optional[Dict[str, Any]] = None,
    has_target: bool = True,
) -> Dict[str, Any]:
    """One row of :data:`MATTING_FEATURES`; ``image``/``alpha`` are paths, PIL images or ``{"bytes": ...}``.

    ``has_target=False`` marks texts that name nothing in the image; their ``alpha`` must then be all zero.
    """
    if isinstance(image, Path):
        image = str(image)
    if isinstance(alpha, Path):
        alpha = str(alpha)
    texts = [str(t) for t in texts]
    text_types = list(text_types) if text_types else []
    if text_types and len(text_types) != len(texts):
        raise ValueError(f"instance {instance_id}: {len(texts)} texts but {len(text_types)} text types")
    return {
        "image": image,
        "alpha": alpha,
        "texts": texts,
        "text_types": text_types,
        "instance_id": str(instance_id),
        "image_id": str(image_id),
        "source": source,
        "meta": json.dumps(meta or {}, sort_keys=True),
        "has_target": bool(has_target),
    }


def row_has_target(row: Mapping[str, Any]) -> bool:
    """The row's ``has_target``; rows of sets saved before the column existed all have a target."""
    return _has_target(row.get("has_target"))


def has_target_flags(dataset) -> List[bool]:
    """:func:`row_has_target` of every row of a ``datasets.Dataset``, read from that column alone (no image is
    decoded); all True for a set saved before the column existed."""
    if "has_target" not in dataset.column_names:
        return [True] * len(dataset)
    return [_has_target(value) for value in dataset["has_target"]]


def _has_target(value: Any) -> bool:
    return True if value is None else bool(value)


def require_dir(path: Path, what: str) -> Path:
    """Returns ``path`` if it is a folder, else raises :class:`DatasetLayoutError` saying what was found instead."""
    return path if path.is_dir() else _layout_error(path, f"{what} folder")


def require_file(path: Path, what: str) -> Path:
    """Returns ``path`` if it is a file, else raises :class:`DatasetLayoutError` saying what was found instead."""
    return path if path.is_file() else _layout_error(path, f"{what} file")


def _layout_error(path: Path, expected: str):
    parent = path.parent
    found = sorted(p.name for p in parent.iterdir())[:20] if parent.is_dir() else "(parent folder missing too)"
    raise DatasetLayoutError(f"expected the {expected} at {path}; found in {parent}: {found}")


def first_existing(candidates: Iterable[Path], what: str, is_dir: bool = True) -> Path:
    """The first candidate that exists; the error lists every path tried."""
    candidates = list(candidates)
    for path in candidates:
        if path.is_dir() if is_dir else path.is_file():
            return path
    tried = "\n  ".join(str(p) for p in candidates)
    raise DatasetLayoutError(f"could not find the {what}; tried:\n  {tried}")


def index_by_stem(folder: Path, extensions: Sequence[str] = IMAGE_EXTENSIONS) -> Dict[str, Path]:
    """Maps file stem to path for the files of ``folder`` with one of ``extensions``; duplicate stems are errors."""
    index: Dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.is_file() and path.suffix in extensions:
            if path.stem in index:
                raise DatasetLayoutError(f"two files share the stem {path.stem!r}: {index[path.stem]} and {path}")
            index[path.stem] = path
    return index


def read_json(path: Path, what: str) -> Any:
    require_file(path, what)
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except (OSError, json.JSONDecodeError) as error:
        raise DatasetLayoutError(f"could not read the {what} {path}: {error}") from error


def read_captions(path: Optional[PathLike]) -> Optional[Dict[str, List[str]]]:
    """Reads a caption side-file: JSON ``{image stem: caption or [captions]}`` (written by caption_dataset.py)."""
    if path is None:
        return None
    data = read_json(Path(path), "caption")
    if not isinstance(data, dict):
        raise DatasetLayoutError(f"caption file {path} must hold a JSON object keyed by image stem, got {type(data)}")
    captions = {}
    for stem, value in data.items():
        values = [value] if isinstance(value, str) else value
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise DatasetLayoutError(f"caption of {stem!r} in {path} must be a string or a list of strings")
        captions[str(stem)] = values
    return captions


def captions_for(captions: Optional[Dict[str, List[str]]], stem: str, path: Optional[PathLike]) -> List[str]:
    if captions is None:
        return []
    if stem not in captions:
        raise DatasetLayoutError(f"caption file {path} has no entry for image {stem!r}")
    return captions[stem]


def pair_by_stem(images: Dict[str, Path], alphas: Dict[str, Path], image_dir: Path, alpha_dir: Path) -> List[str]:
    """Stems present in both folders; any stem missing on one side is an error naming the folder and files."""
    missing_alpha = sorted(set(images) - set(alphas))
    missing_image = sorted(set(alphas) - set(images))
    if missing_alpha or missing_image:
        parts = []
        if missing_alpha:
            parts.append(f"{len(missing_alpha)} image(s) without alpha in {alpha_dir}, e.g. {missing_alpha[:5]}")
        if missing_image:
            parts.append(f"{len(missing_image)} alpha(s) without image in {image_dir}, e.g. {missing_image[:5]}")
        raise DatasetLayoutError("; ".join(parts))
    return sorted(images)


def prepare_builder(
    builder: datasets.DatasetBuilder,
    split: Optional[str] = None,
    num_proc: Optional[int] = None,
) -> Union[datasets.Dataset, datasets.DatasetDict]:
    """Runs ``download_and_prepare`` (a cache hit when already built) and returns the split(s)."""
    builder.download_and_prepare(num_proc=num_proc)
    return builder.as_dataset(split=split)


@dataclass
class MattingBuilderConfig(datasets.BuilderConfig):
    """Options shared by the folder loaders; ``data_dir`` (inherited) is the user's copy of the set."""

    captions_file: Optional[str] = None


class MattingBuilder(datasets.GeneratorBasedBuilder):
    """Base of the loaders of user-downloaded sets: subclasses implement :meth:`collect_rows`.

    All rows are collected (and every file checked) before anything is written, so a broken copy fails at once
    with the path that is missing instead of half-way through, and nothing is skipped silently.
    """

    BUILDER_CONFIG_CLASS = MattingBuilderConfig
    SOURCE = "matting"
    # Part of the `datasets` cache key: 1.1.0 added the `has_target` column, so caches built before are not reused.
    VERSION = datasets.Version("1.1.0")

    def _info(self) -> datasets.DatasetInfo:
        return datasets.DatasetInfo(
            description=(self.__doc__ or "").strip().split("\n")[0],
            features=MATTING_FEATURES,
        )

    def collect_rows(self, root: Path) -> Dict[str, List[Dict[str, Any]]]:
        """Returns ``{split name: [row, ...]}`` for the copy at ``root``."""
        raise NotImplementedError

    def _split_generators(self, dl_manager):
        if not self.config.data_dir:
            raise ValueError(f"{type(self).__name__} needs data_dir=<folder of your downloaded copy>")
        root = Path(self.config.data_dir).expanduser()
        require_dir(root, f"{type(self).__name__} data_dir")
        splits = self.collect_rows(root)
        for split, rows in splits.items():
            check_files_exist(rows, f"{type(self).__name__} split {split!r}")
        return [datasets.SplitGenerator(name=split, gen_kwargs={"rows": rows}) for split, rows in splits.items()]

    def _generate_examples(self, rows: List[Dict[str, Any]]):
        for row in rows:
            yield row["instance_id"], row


def check_files_exist(rows: List[Dict[str, Any]], what: str) -> None:
    """Raises one error listing every image or alpha path of ``rows`` that is not a readable file."""
    missing = []
    for row in rows:
        for key in ("image", "alpha"):
            value = row[key]
            if isinstance(value, str) and not Path(value).is_file():
                missing.append(f"{key} of {row['instance_id']}: {value}")
    if missing:
        listed = "\n  ".join(missing[:20])
        more = f"\n  ... and {len(missing) - 20} more" if len(missing) > 20 else ""
        raise DatasetLayoutError(f"{what}: {len(missing)} file(s) missing:\n  {listed}{more}")


def load_with_builder(
    builder_cls: type,
    data_dir: PathLike,
    split: Optional[str] = None,
    cache_dir: Optional[PathLike] = None,
    **config_kwargs: Any,
) -> Union[datasets.Dataset, datasets.DatasetDict]:
    """Instantiates ``builder_cls`` on ``data_dir``, prepares it (cached) and returns one split or all of them.

    A ``captions_file`` config entry is made absolute, so the cache key does not depend on the working directory.
    """
    if config_kwargs.get("captions_file") is not None:
        config_kwargs["captions_file"] = str(Path(config_kwargs["captions_file"]).resolve())
    builder = builder_cls(
        data_dir=str(Path(data_dir).expanduser().resolve()),
        cache_dir=None if cache_dir is None else str(cache_dir),
        **config_kwargs,
    )
    return prepare_builder(builder, split=split)
