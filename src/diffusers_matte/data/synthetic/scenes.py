# Copyright 2026 The diffusers-matte authors. Licensed under the Apache License, Version 2.0.
"""Scenes: the layout of a synthetic image (how many instances, how large, which look-alikes), sampling its
instances, compositing them over a background, and :func:`generate_scene`."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import numpy as np

from .expressions import describe, paraphrase
from .shapes import (
    CATEGORIES,
    COLORS,
    SIZE_RANGES,
    SOLID_SHAPES,
    THIN_THINGS,
    TRANSPARENT_THINGS,
    Instance,
    make_background,
    render_instance,
)


@dataclass(frozen=True)
class SceneLayout:
    """How crowded a scene is and how large its objects are, relative to the image.

    The defaults draw 2 to 4 instances of 3-10% of a 256 px image each. A model that predicts on a coarse latent
    grid (1/4 or 1/8 of its input) cannot draw a small object's edge at all, so a small-scale replication uses
    fewer, larger objects and fewer thin ones, whose sub-pixel strands no grid resolves (the benchmark's "perfect
    latent-grid alpha" ceiling tells how much of the matte a coarse prediction can reach).

    Args:
        max_instances: instances per image are drawn from 2 to this.
        object_scale: multiplies the radii of `SIZE_RANGES`.
        thin_weight: sampling weight of each thin category (fur, tassels, dandelions, nets) against 1 for every
            other category.
        paraphrase: vary the wording of expressions with synonyms a person would use ("sphere" for "ball",
            "upper left" for "top left", "grey" for "gray", ...), so a model does not learn one phrasing only.
        min_visible: share of an instance's own alpha that must stay visible in front of the others (scenes that
            hide more are drawn again); higher means less occlusion.
        transparent_weight: sampling weight of each transparent category (glass, bubble, smoke, veil).
        clear_share: probability that a solid shape is drawn semi-transparent (a look-alike may still differ from
            its original by material).
    """

    max_instances: int = 4
    object_scale: float = 1.0
    thin_weight: float = 1.0
    paraphrase: bool = False
    min_visible: float = 0.4
    transparent_weight: float = 1.0
    clear_share: float = 0.3

    def __post_init__(self):
        if self.max_instances < 2:
            raise ValueError(f"max_instances must be at least 2, got {self.max_instances}")
        if self.object_scale <= 0 or self.thin_weight < 0 or self.transparent_weight < 0:
            raise ValueError(
                "object_scale must be > 0, thin_weight and transparent_weight >= 0, got "
                f"{self.object_scale}, {self.thin_weight} and {self.transparent_weight}"
            )
        for name in ("min_visible", "clear_share"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")

    def category_probabilities(self) -> np.ndarray:
        weight = {
            **dict.fromkeys(THIN_THINGS, self.thin_weight),
            **dict.fromkeys(TRANSPARENT_THINGS, self.transparent_weight),
        }
        weights = np.array([weight.get(c, 1.0) for c in CATEGORIES])
        return weights / weights.sum()


# The layout of the small-scale replication (`benchmarks/synthetic_ablation.py`) and of the demonstration model:
# 2-3 large objects per 64 px image, each at least 80% visible, a third of them see-through (transparent
# categories at 0.2 and thin ones at 0.1 of the others' weight, 10% of solids clear). See-through instances set
# how many pairs grounding takes (`benchmarks/results/grounding_learnability.md`): at three quarters of the
# instances, as before, a 90-minute CPU ablation cannot teach it. A perfect alpha on the 16x16 latent grid,
# up-sampled, scores about a fifth of the empty matte's SAD on it.
REPLICATION_LAYOUT = SceneLayout(
    max_instances=3,
    object_scale=2.2,
    thin_weight=0.1,
    paraphrase=True,
    min_visible=0.8,
    transparent_weight=0.2,
    clear_share=0.1,
)


MATERIAL_OF = {
    **dict.fromkeys(SOLID_SHAPES, "solid"),
    "glass": "transparent",
    "bubble": "transparent",
    "smoke": "smoky",
    "veil": "transparent",
    "furball": "fuzzy",
    "tassel": "fuzzy",
    "dandelion": "fuzzy",
    "net": "meshed",
}


def _sample_instance(
    rng: np.random.Generator,
    image_size: int,
    layout: SceneLayout,
    category: Optional[str] = None,
    **fixed,
) -> Instance:
    category = category or str(rng.choice(CATEGORIES, p=layout.category_probabilities()))
    size_class = fixed.get("size") or str(rng.choice(["small", "large"], p=[0.45, 0.55]))
    material = fixed.get("material") or MATERIAL_OF[category]
    if "material" not in fixed and category in SOLID_SHAPES and rng.random() < layout.clear_share:
        material = "transparent"
    lo, hi = SIZE_RANGES[size_class]
    radius = float(rng.uniform(lo, hi) * image_size * layout.object_scale)
    margin = radius * 0.6
    center = (
        float(rng.uniform(margin, image_size - margin)),
        float(rng.uniform(margin, image_size - margin)),
    )
    blurry = fixed.get("blurry")
    if blurry is None:
        blurry = bool(category in SOLID_SHAPES + ("glass", "bubble") and rng.random() < 0.25)
    return Instance(
        category=category,
        color=fixed.get("color") or str(rng.choice(list(COLORS))),
        size=size_class,
        material=material,
        blurry=blurry,
        center=center,
        radius=radius,
        angle=float(rng.uniform(0, 2 * np.pi)),
        seed=int(rng.integers(2**31)),
    )


def _distractor(rng: np.random.Generator, size: int, target: Instance, layout: SceneLayout) -> Instance:
    """A look-alike of ``target``: same category, differing in one attribute (or none)."""
    change = str(rng.choice(["color", "size", "material", "none"], p=[0.4, 0.25, 0.15, 0.2]))
    fixed = {
        "color": target.color,
        "size": target.size,
        "material": target.material,
        "blurry": target.blurry,
    }
    if change == "color":
        fixed["color"] = str(rng.choice([c for c in COLORS if c != target.color]))
    elif change == "size":
        fixed["size"] = "small" if target.size == "large" else "large"
    elif change == "material" and target.category in SOLID_SHAPES:
        fixed["material"] = "solid" if target.material == "transparent" else "transparent"
    return _sample_instance(rng, size, layout, category=target.category, **fixed)


@dataclass
class Scene:
    image: np.ndarray  # uint8 (H, W, 3)
    instances: List[Instance]


def render_layers(instances: List[Instance], size: int) -> List[Tuple]:
    """Draws every instance (back to front) and sets its ``coverage`` and visible ``alpha`` (Porter-Duff over).

    Returns the ``(box, alpha, colour)`` layers for :func:`paint`.
    """
    layers = [render_instance(inst, size) for inst in instances]
    transmittance = np.ones((size, size), np.float32)
    for inst, ((x0, y0, x1, y1), alpha, _) in zip(instances[::-1], layers[::-1]):  # front to back
        full = np.zeros((size, size), np.float32)
        full[y0:y1, x0:x1] = alpha
        inst.coverage = full
        inst.alpha = full * transmittance
        transmittance *= 1.0 - full
    return layers


def paint(background: np.ndarray, layers: List[Tuple]) -> np.ndarray:
    """Composites the layers of :func:`render_layers` over ``background``, back to front."""
    image = background.copy()
    for (x0, y0, x1, y1), alpha, colour in layers:
        region = image[y0:y1, x0:x1]
        region += alpha[..., None] * (colour - region)
    return image


def compose(background: np.ndarray, instances: List[Instance]) -> np.ndarray:
    """Renders ``instances`` over ``background``; sets each instance's ``coverage`` and visible ``alpha``."""
    return paint(background, render_layers(instances, background.shape[0]))


def generate_scene(
    seed: Sequence[int],
    size: int = 256,
    max_instances: Optional[int] = None,
    max_tries: int = 100,
    layout: Optional[SceneLayout] = None,
) -> Scene:
    """One deterministic scene from ``seed`` (any ``np.random.default_rng`` seed, e.g. ``[base_seed, split, index]``).

    ``layout`` sets the number and size of objects (default :class:`SceneLayout`); ``max_instances`` overrides its
    field of that name.
    """
    layout = layout or SceneLayout()
    if max_instances is not None:
        layout = dataclasses.replace(layout, max_instances=max_instances)
    rng = np.random.default_rng(seed)
    for _ in range(max_tries):
        count = int(rng.integers(2, layout.max_instances + 1))
        instances = [_sample_instance(rng, size, layout)]
        while len(instances) < count:
            if rng.random() < 0.5:
                target = instances[int(rng.integers(len(instances)))]
                instances.append(_distractor(rng, size, target, layout))
            else:
                instances.append(_sample_instance(rng, size, layout))
        order = rng.permutation(len(instances))
        instances = [instances[k] for k in order]
        layers = render_layers(instances, size)
        # every instance must stay recognisable: enough of its own alpha visible, and some solid part
        if any(
            i.alpha.sum() < layout.min_visible * i.coverage.sum() or i.alpha.sum() < 40 or i.alpha.max() < 0.3
            for i in instances
        ):
            continue
        if not describe(instances, size, rng):
            continue
        # the background is drawn only for accepted scenes; sometimes it shares an instance's colour
        camouflage = instances[int(rng.integers(len(instances)))].color if rng.random() < 0.3 else None
        image = paint(make_background(rng, size, camouflage), layers)
        if layout.paraphrase:
            for inst in instances:
                inst.texts = [paraphrase(text, rng) for text in inst.texts]
        if rng.random() < 0.5:  # sensor noise on the composite only (alphas stay exact)
            sigma = rng.uniform(1.0, 4.0)
            image += rng.standard_normal(image.shape, dtype=np.float32) * sigma
        return Scene(np.clip(image + 0.5, 0, 255).astype(np.uint8), instances)
    raise RuntimeError(
        f"could not draw an unambiguous scene from seed {list(seed)} in {max_tries} tries with {layout}; "
        "fewer or smaller objects, or a lower min_visible, leave more room"
    )
