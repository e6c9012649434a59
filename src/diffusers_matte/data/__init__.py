# Copyright 2026 The diffusers-matte authors. Licensed under the Apache License, Version 2.0.
"""Datasets, training targets, augmentation and the data schedule.

Row schema (:data:`MATTING_FEATURES`), the same for every loader so training and evaluation code handle all sets
alike (and ``datasets.concatenate_datasets`` works across them):

=============== ================================ =============================================================
column          type                             meaning
=============== ================================ =============================================================
``image``       ``datasets.Image()``             the RGB image (repeated on every instance row of an image)
``alpha``       ``datasets.Image(mode="L")``     ground-truth alpha of this instance, 0..255
``texts``       ``List(string)``                 every expression / caption of this instance (may be empty)
``text_types``  ``List(string)``                 kind of each text (``keyword``, ``basic``, ``absolute``,
                                                 ``relative``, ``caption``) or empty when the set does not say
``instance_id`` ``string``                       unique within a split (RefMatte: mask stem; RefCOCO: ref_id)
``image_id``    ``string``                       shared by the instances of one image
``source``      ``string``                       ``refmatte``, ``refmatte_rw100``, ``refcoco``, ``p3m10k``,
                                                 ``am2k``, ``rm1k``/``folder``, ``synthetic``
``meta``        ``string``                       JSON of set-specific extras (e.g. ``trimap`` path for test sets,
                                                 ``keyword``, RefCOCO ``ann_id``/``category``, synthetic attributes)
``has_target``  ``bool``                         False for a text that names nothing in the image (all-zero
                                                 ``alpha``); True on every real set; read with
                                                 :func:`row_has_target` (a set saved without it: True)
=============== ================================ =============================================================

One row per instance: RefMatte, RW100, RefCOCO and the synthetic set are instance-level; P3M-10k, AM-2k and
image folders are image-level (one row per image). Random expression choice and the 512x512 resize belong to the
training transform (:class:`TrainingTransform`), not to the loaders.

Loaders take the folder of the user's own download and return ``datasets.Dataset``/``DatasetDict`` (built once into
the ``datasets`` cache, keyed by the loader's arguments, not by the folder's contents: use a fresh ``cache_dir`` after
changing files). Layout problems raise :class:`DatasetLayoutError` naming the path or key expected and what was found.
"""

# Exports resolve lazily, so `python -m diffusers_matte.data.synthetic` does not import its own module twice.
_EXPORTS = {
    "AM2k": "am2k",
    "CompositeAugment": "augment",
    "DataSchedule": "schedule",
    "DatasetLayoutError": "common",
    "ImageAlphaFolder": "folder",
    "MATTING_FEATURES": "common",
    "MORPHOLOGY_KERNEL_SIZE": "targets",
    "MultiSourceDataset": "schedule",
    "P3M10k": "p3m",
    "REGION_BACKGROUND": "targets",
    "REGION_FOREGROUND": "targets",
    "REGION_TRANSPARENT": "targets",
    "RefCOCO": "refcoco",
    "RefMatte": "refmatte",
    "RefMatteRW100": "refmatte_rw100",
    "ScheduledBatchSampler": "schedule",
    "SyntheticMatting": "synthetic",
    "TrainingTransform": "transforms",
    "blur_background": "augment",
    "known_mask": "targets",
    "collate_training_examples": "transforms",
    "composite_rssn": "augment",
    "downsample_alpha": "targets",
    "downsample_region_map": "targets",
    "generate_scene": "synthetic",
    "gfm_crop": "augment",
    "load_am2k": "am2k",
    "load_image_alpha_folder": "folder",
    "load_p3m10k": "p3m",
    "load_refcoco": "refcoco",
    "load_refmatte": "refmatte",
    "load_refmatte_rw100": "refmatte_rw100",
    "load_synthetic_matting": "synthetic",
    "make_row": "common",
    "region_map": "targets",
    "region_one_hot": "targets",
    "row_has_target": "common",
    "swap_left_right": "augment",
    "transparent_mask": "targets",
    "trimap_from_mask": "targets",
}

__all__ = [  # noqa: F822 - resolved lazily by __getattr__
    "AM2k",
    "CompositeAugment",
    "DataSchedule",
    "DatasetLayoutError",
    "ImageAlphaFolder",
    "MATTING_FEATURES",
    "MORPHOLOGY_KERNEL_SIZE",
    "MultiSourceDataset",
    "P3M10k",
    "REGION_BACKGROUND",
    "REGION_FOREGROUND",
    "REGION_TRANSPARENT",
    "RefCOCO",
    "RefMatte",
    "RefMatteRW100",
    "ScheduledBatchSampler",
    "SyntheticMatting",
    "TrainingTransform",
    "blur_background",
    "known_mask",
    "collate_training_examples",
    "composite_rssn",
    "downsample_alpha",
    "downsample_region_map",
    "generate_scene",
    "gfm_crop",
    "load_am2k",
    "load_image_alpha_folder",
    "load_p3m10k",
    "load_refcoco",
    "load_refmatte",
    "load_refmatte_rw100",
    "load_synthetic_matting",
    "make_row",
    "region_map",
    "region_one_hot",
    "row_has_target",
    "swap_left_right",
    "transparent_mask",
    "trimap_from_mask",
]


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(list(globals()) + list(_EXPORTS))
