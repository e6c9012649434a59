# Copyright 2026 The diffusers-matte authors. Licensed under the Apache License, Version 2.0.
"""A procedural referring-matting set, deterministic from a seed.

Every image holds 2 to 4 instances on a textured background; each instance has a ground-truth alpha (its *visible*
contribution, i.e. its own alpha times the transmittance of the instances in front of it) and four referring
expressions of the RefMatte kinds: ``keyword``, ``basic`` (attributes), ``absolute`` (position in the image) and
``relative`` (position to another instance, including in front of / behind).

What makes it hard:

* semi-transparent objects (glass, bubbles, smoke, veils and transparent variants of solid shapes);
* soft edges (defocused objects, smoke, fur);
* thin structures whose alpha is fractional coverage (fur, hair tassels, dandelions, nets);
* look-alike distractors: an instance's twin that differs only in colour, size or material, or not at all, so only
  the text tells which one is meant; backgrounds that sometimes share an instance's colour.

Every expression identifies exactly one instance of its image: the generator adds the fewest attributes needed (a
keyword becomes "red ball" when the image has two balls) and re-draws a scene it cannot disambiguate. With
``no_target_share > 0``, images may also get a row whose expressions of the same four kinds name *none* of their
instances (a category, colour, position or relation that is not there; :func:`absent_expressions`), with an
all-zero alpha and ``has_target=False``. No expression names two or more instances, so the set has no ambiguous
rows to flag.

Generate and load with one command::

    python -m diffusers_matte.data.synthetic --output_dir data/synthetic --num_train 20000 --num_test 500

(``--no_target_share 0.3`` adds a no-target row to 30% of the images)

or in Python: ``load_synthetic_matting(num_train=..., num_test=..., seed=0)`` (a :class:`datasets.DatasetDict`).
"""

from .builder import (
    IMAGE_FORMATS,
    NO_TARGET_STREAM,
    SPLIT_IDS,
    SyntheticMatting,
    SyntheticMattingConfig,
    load_synthetic_matting,
    main,
    scene_rows,
)
from .expressions import ABSENT_MAX_SHARE, ATTRIBUTE_ORDER, PARAPHRASES, absent_expressions, describe, paraphrase
from .scenes import MATERIAL_OF, REPLICATION_LAYOUT, Scene, SceneLayout, compose, generate_scene, paint, render_layers
from .shapes import (
    CATEGORIES,
    COLORS,
    H_WORDS,
    SIZE_RANGES,
    SOLID_SHAPES,
    SOURCE,
    SUPERSAMPLE,
    TEXT_TYPES,
    THIN_THINGS,
    TRANSPARENT_THINGS,
    V_WORDS,
    Instance,
    fractal_noise,
    make_background,
    render_instance,
)

__all__ = [
    "ABSENT_MAX_SHARE",
    "ATTRIBUTE_ORDER",
    "CATEGORIES",
    "COLORS",
    "H_WORDS",
    "IMAGE_FORMATS",
    "Instance",
    "MATERIAL_OF",
    "NO_TARGET_STREAM",
    "PARAPHRASES",
    "REPLICATION_LAYOUT",
    "SIZE_RANGES",
    "SOLID_SHAPES",
    "SOURCE",
    "SPLIT_IDS",
    "SUPERSAMPLE",
    "Scene",
    "SceneLayout",
    "SyntheticMatting",
    "SyntheticMattingConfig",
    "TEXT_TYPES",
    "THIN_THINGS",
    "TRANSPARENT_THINGS",
    "V_WORDS",
    "absent_expressions",
    "compose",
    "describe",
    "fractal_noise",
    "generate_scene",
    "load_synthetic_matting",
    "main",
    "make_background",
    "paint",
    "paraphrase",
    "render_instance",
    "render_layers",
    "scene_rows",
]
