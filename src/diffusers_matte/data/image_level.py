# Copyright 2026 The diffusers-matte authors. Licensed under the Apache License, Version 2.0.
"""Image-level matting sets laid out as GFM's and P3M's repositories lay them out: per split, a folder of images,
a folder of alpha masks with the same stems, and for test splits a trimap folder. One algorithm, one table per set
(`am2k.py`, `p3m.py`); these sets have no text, which a ``captions_file`` supplies."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Dict, List, Mapping, Sequence, Tuple

from .common import DatasetLayoutError, MattingBuilder, first_existing, read_captions, require_dir
from .folder import image_level_rows


@dataclass(frozen=True)
class ImageLevelSplit:
    """Where one split lies under the set's folder.

    Args:
        folders: the split's folder relative to the set's folder, the first that exists is used (e.g.
            ``("validation/P3M-500-P", "P3M-500-P")``).
        image_folder: the images' sub-folder (``"original"``, ``"blurred_image"``, ...); masks are in ``mask/``.
        has_trimap: the split has a ``trimap/`` sub-folder (test splits), read into ``meta["trimap"]``.
    """

    folders: Tuple[str, ...]
    image_folder: str
    has_trimap: bool = False


class ImageLevelMattingBuilder(MattingBuilder):
    """A `MattingBuilder` for one image-level set, described by three class attributes.

    ``DISPLAY_NAME`` names the set in messages, ``ROOT_NAMES`` are the set's own folder names tried under the given
    folder (then the folder itself), ``SPLITS`` maps split names to `ImageLevelSplit`. The config's ``splits``
    chooses which to read; a split whose folder is absent is left out; none present is a `DatasetLayoutError`.
    """

    DISPLAY_NAME: ClassVar[str]
    ROOT_NAMES: ClassVar[Sequence[str]]
    SPLITS: ClassVar[Mapping[str, ImageLevelSplit]]

    def collect_rows(self, root: Path) -> Dict[str, List[Dict[str, Any]]]:
        name = self.DISPLAY_NAME
        unknown = set(self.config.splits) - set(self.SPLITS)
        if unknown:
            raise ValueError(f"unknown {name} split(s) {sorted(unknown)}; choose from {list(self.SPLITS)}")
        base = first_existing([root / folder for folder in self.ROOT_NAMES] + [root], f"{name} folder")
        captions = read_captions(self.config.captions_file)
        splits = {}
        for split in self.config.splits:
            layout = self.SPLITS[split]
            found = [base / folder for folder in layout.folders if (base / folder).is_dir()]
            if not found:
                continue
            trimaps = require_dir(found[0] / "trimap", f"{name} {split} trimap") if layout.has_trimap else None
            splits[split] = image_level_rows(
                require_dir(found[0] / layout.image_folder, f"{name} {split} image"),
                require_dir(found[0] / "mask", f"{name} {split} mask"),
                self.SOURCE,
                split,
                self.config.captions_file,
                trimap_dir=trimaps,
                captions=captions,
            )
        if not splits:
            expected = [f"{layout.folders[0]}/" for layout in self.SPLITS.values()]
            expected = ", ".join(expected[:-1]) + " or " + expected[-1]
            found = sorted(p.name for p in base.iterdir())
            raise DatasetLayoutError(f"no {name} split under {base}: expected {expected}; found {found}")
        return splits
