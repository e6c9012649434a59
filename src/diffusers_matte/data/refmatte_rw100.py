# Copyright 2026 The diffusers-matte authors. Licensed under the Apache License, Version 2.0.
"""RefMatte-RW100 loader (100 real images, 221 instances; Li et al., 2023) for the user's own unzipped copy.

Layout (used by SDMatte, SEMat and MAM)::

    <data_dir>/[RefMatte_RW_100/]image/<stem>.jpg
    <data_dir>/[RefMatte_RW_100/]mask/<stem>_<k>.png           one alpha per instance
    <data_dir>/[RefMatte_RW_100/]refmatte_rw100_label.json      same schema as RefMatte's label JSON

Each instance has four expressions (basic, absolute, relative, free in the official figure; the order in the JSON
is unverified, so ``text_types`` stays empty). ``eval_index_expression.json`` (MAM's one-expression index) is not
needed: TDM averages over all four expressions.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Optional, Union

import datasets

from .common import (
    MattingBuilder,
    PathLike,
    first_existing,
    load_with_builder,
    read_json,
    require_dir,
)
from .refmatte import find_label_file, rows_from_label_json

SOURCE = "refmatte_rw100"


class RefMatteRW100(MattingBuilder):
    """RefMatte-RW100: a single ``test`` split, one row per instance with its four expressions."""

    SOURCE = SOURCE

    def collect_rows(self, root: Path) -> Dict[str, List[Dict[str, Any]]]:
        base = first_existing(
            [root / "RefMatte_RW_100", root],
            "RefMatte_RW_100 folder (with image/ and mask/)",
        )
        label_path = find_label_file(base, "refmatte_rw100_label.json")
        rows = rows_from_label_json(
            read_json(label_path, "RefMatte-RW100 label"),
            label_path,
            require_dir(base / "image", "RefMatte-RW100 image"),
            require_dir(base / "mask", "RefMatte-RW100 mask"),
            SOURCE,
        )
        return {"test": rows}


def load_refmatte_rw100(
    data_dir: PathLike, cache_dir: Optional[PathLike] = None
) -> Union[datasets.Dataset, datasets.DatasetDict]:
    """Loads RefMatte-RW100 from ``data_dir``; returns the ``test`` split as a :class:`datasets.Dataset`."""
    return load_with_builder(RefMatteRW100, data_dir, split="test", cache_dir=cache_dir)
