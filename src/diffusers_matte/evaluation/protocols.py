# Copyright 2026 The diffusers-matte authors. Licensed under the Apache License, Version 2.0.
"""The evaluation protocols (which set, at which resolution, with which texts) and the samples they yield."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
from PIL import Image

PathLike = Union[str, os.PathLike]


@dataclass(frozen=True)
class EvaluationProtocol:
    """How one evaluation set is scored.

    Args:
        name: the protocol's key in :data:`PROTOCOLS`.
        description: one line for tables and ``--help``.
        resolution: side of the square that image and ground truth are resized to (bicubic / bilinear) before
            prediction and scoring; ``None`` keeps each image's own size.
        uses_captions: the set has no text of its own and needs a caption side-file (AM-2k, P3M).
    """

    name: str
    description: str
    resolution: Optional[int]
    uses_captions: bool = False


PROTOCOLS: Dict[str, EvaluationProtocol] = {
    p.name: p
    for p in (
        # Sec. 4.3: "the input resolution for all methods is set to 512x512, and the metrics are also calculated on
        # this resolution"; every instance with each of its 4 expressions.
        EvaluationProtocol("refmatte_test", "RefMatte-Test, 512x512, all expressions", 512),
        EvaluationProtocol("refmatte_rw100", "RefMatte-RW100, 512x512, all expressions", 512),
        # Sec. 4.4: "All the metrics are calculated in full resolution"; texts are BLIP-2 captions (Sec. 4.1).
        EvaluationProtocol("am2k", "AM-2k validation, full resolution, captions", None, True),
        EvaluationProtocol("p3m_500_p", "P3M-500-P, full resolution, captions", None, True),
        EvaluationProtocol("p3m_500_np", "P3M-500-NP, full resolution, captions", None, True),
        EvaluationProtocol("synthetic", "synthetic test split, native size, all expressions", None),
    )
}


def get_protocol(protocol: Union[str, EvaluationProtocol]) -> EvaluationProtocol:
    """The :class:`EvaluationProtocol` named ``protocol`` (or ``protocol`` itself)."""
    if isinstance(protocol, EvaluationProtocol):
        return protocol
    if protocol not in PROTOCOLS:
        raise ValueError(f"`protocol` must be one of {sorted(PROTOCOLS)}, got {protocol!r}.")
    return PROTOCOLS[protocol]


def load_protocol_dataset(
    protocol: Union[str, EvaluationProtocol],
    data_dir: Optional[PathLike] = None,
    captions_file: Optional[PathLike] = None,
    cache_dir: Optional[PathLike] = None,
    synthetic_num_test: int = 200,
    synthetic_seed: int = 0,
    synthetic_image_size: int = 256,
    synthetic_no_target_share: float = 0.0,
):
    """The evaluation split of ``protocol`` as a :class:`datasets.Dataset` (the rows of :mod:`diffusers_matte.data`).

    Args:
        protocol: a key of :data:`PROTOCOLS`.
        data_dir: the user's copy of the set. For ``synthetic``, a ``DatasetDict.save_to_disk`` folder (its
            ``test`` split is used) or ``None`` to generate the split from ``synthetic_*``.
        captions_file: caption side-file (``training/caption_dataset.py``) of AM-2k / P3M; required there.
        cache_dir: ``datasets`` cache folder.
        synthetic_num_test / synthetic_seed / synthetic_image_size / synthetic_no_target_share: the generated
            synthetic split (:func:`load_synthetic_matting` arguments; a share > 0 adds rows whose expressions name
            nothing in the image, which the report scores apart, see :func:`summarize`).
    """
    protocol = get_protocol(protocol)
    if captions_file is not None and not protocol.uses_captions:
        raise ValueError(
            f"`captions_file` is for the caption-based protocols (am2k, p3m_500_p, p3m_500_np); "
            f"{protocol.name!r} has its own expressions."
        )
    if protocol.uses_captions and captions_file is None:
        raise ValueError(
            f"protocol {protocol.name!r} needs `captions_file` (the set has no text; write one with "
            "training/caption_dataset.py)."
        )
    if protocol.name == "synthetic":
        return _load_synthetic(
            data_dir,
            cache_dir,
            synthetic_num_test,
            synthetic_seed,
            synthetic_image_size,
            synthetic_no_target_share,
        )
    if data_dir is None:
        raise ValueError(f"protocol {protocol.name!r} needs `data_dir`, the folder of your copy of the set.")
    if protocol.name == "refmatte_test":
        from ..data.refmatte import load_refmatte

        return load_refmatte(data_dir, split="test", cache_dir=cache_dir)
    if protocol.name == "refmatte_rw100":
        from ..data.refmatte_rw100 import load_refmatte_rw100

        return load_refmatte_rw100(data_dir, cache_dir=cache_dir)
    if protocol.name == "am2k":
        from ..data.am2k import load_am2k

        return load_am2k(data_dir, "validation", captions_file, cache_dir)
    from ..data.p3m import load_p3m10k

    return load_p3m10k(data_dir, protocol.name, captions_file, cache_dir)


def _load_synthetic(data_dir, cache_dir, num_test, seed, image_size, no_target_share):
    import datasets

    if data_dir is not None:
        loaded = datasets.load_from_disk(str(data_dir))
        if isinstance(loaded, datasets.DatasetDict):
            if "test" not in loaded:
                raise ValueError(
                    f"{data_dir} holds the splits {sorted(loaded)}, but the synthetic protocol uses 'test'."
                )
            loaded = loaded["test"]
        return loaded
    from ..data.synthetic import load_synthetic_matting

    return load_synthetic_matting(0, num_test, seed, image_size, cache_dir, no_target_share=no_target_share)["test"]


@dataclass(frozen=True)
class Sample:
    row: int
    instance_id: str
    image_id: str
    text_index: int
    text: str
    text_type: str
    has_target: bool = True  # False: the text names nothing in the image (an all-zero ground truth)

    @property
    def key(self) -> Tuple[str, int]:
        return (self.instance_id, self.text_index)


def list_samples(dataset, text_type_names: Optional[Sequence[str]] = None) -> List[Sample]:
    """Every (instance, text) pair of ``dataset``, in row order then text order.

    A text's type is the row's ``text_types`` entry; where the set gives none (RefMatte, RW100), it is
    ``text_type_names[index]`` if given, else ``text_<index>``. A sample has a target unless its row's
    ``has_target`` is False (sets saved before that column existed have a target everywhere).
    """
    from ..data.common import has_target_flags

    columns = {name: list(dataset[name]) for name in ("texts", "text_types", "instance_id", "image_id")}
    flags = has_target_flags(dataset)
    seen, samples = set(), []
    for row, (texts, types, instance_id, image_id, has_target) in enumerate(zip(*columns.values(), flags)):
        if instance_id in seen:
            raise ValueError(f"instance_id {instance_id!r} appears twice in the dataset; keys must be unique.")
        seen.add(instance_id)
        if not texts:
            raise ValueError(
                f"instance {instance_id!r} has no text; for sets without expressions pass a captions file."
            )
        for index, text in enumerate(texts):
            if types:
                kind = types[index]
            elif text_type_names is not None and index < len(text_type_names):
                kind = text_type_names[index]
            else:
                kind = f"text_{index}"
            samples.append(Sample(row, instance_id, image_id, index, text, kind, has_target))
    return samples


def load_pair(row: Dict[str, Any], resolution: Optional[int]) -> Tuple[np.ndarray, np.ndarray]:
    """RGB uint8 image and float64 alpha in [0, 1] of a dataset row, resized to ``resolution`` squared if given.

    The resize follows the training transform (bicubic image, bilinear 8-bit alpha), so the model sees what it was
    trained on and the ground truth is the 512x512 matte the paper scores against.
    """
    from ..pipelines.soft_grounding.image_processor import to_rgb_pil  # the project's one image reader

    image = to_rgb_pil(row["image"])
    alpha = row["alpha"].convert("L")
    if image.size != alpha.size:
        raise ValueError(
            f"instance {row['instance_id']!r}: image size {image.size} and alpha size {alpha.size} differ."
        )
    if resolution is not None:
        image = image.resize((resolution, resolution), Image.BICUBIC)
        alpha = alpha.resize((resolution, resolution), Image.BILINEAR)
    return np.asarray(image), np.asarray(alpha, dtype=np.float64) / 255.0
