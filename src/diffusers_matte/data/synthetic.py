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
keyword becomes "red ball" when the image has two balls) and re-draws a scene it cannot disambiguate.

Generate and load with one command::

    python -m diffusers_matte.data.synthetic --output_dir data/synthetic --num_train 20000 --num_test 500

or in Python: ``load_synthetic_matting(num_train=..., num_test=..., seed=0)`` (a :class:`datasets.DatasetDict`).
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import itertools
import json
import math
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

import datasets
import numpy as np
from PIL import Image, ImageDraw

from .common import MATTING_FEATURES, make_row

SOURCE = "synthetic"
TEXT_TYPES = ("keyword", "basic", "absolute", "relative")

COLORS: Dict[str, Tuple[int, int, int]] = {
    "red": (205, 35, 35),
    "orange": (240, 135, 25),
    "yellow": (235, 210, 45),
    "green": (55, 160, 60),
    "blue": (40, 85, 205),
    "purple": (125, 55, 165),
    "pink": (240, 135, 185),
    "white": (240, 240, 235),
    "black": (28, 28, 30),
    "brown": (125, 78, 42),
    "gray": (128, 128, 128),
}

# category -> (renderer, can it also be drawn semi-transparent)
SOLID_SHAPES = ("ball", "box", "star", "ring", "triangle")
TRANSPARENT_THINGS = ("glass", "bubble", "smoke", "veil")
THIN_THINGS = ("furball", "tassel", "dandelion", "net")
CATEGORIES = SOLID_SHAPES + TRANSPARENT_THINGS + THIN_THINGS

SIZE_RANGES = {
    "small": (0.07, 0.11),
    "large": (0.15, 0.22),
}  # radius as a fraction of the image size, before `SceneLayout.object_scale`


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
    """

    max_instances: int = 4
    object_scale: float = 1.0
    thin_weight: float = 1.0
    paraphrase: bool = False

    def __post_init__(self):
        if self.max_instances < 2:
            raise ValueError(f"max_instances must be at least 2, got {self.max_instances}")
        if self.object_scale <= 0 or self.thin_weight < 0:
            raise ValueError(
                f"object_scale must be > 0 and thin_weight >= 0, got {self.object_scale} and {self.thin_weight}"
            )

    def category_probabilities(self) -> np.ndarray:
        weights = np.array([self.thin_weight if c in THIN_THINGS else 1.0 for c in CATEGORIES])
        return weights / weights.sum()


# The layout of the small-scale replication (`benchmarks/synthetic_ablation.py`) and of the demonstration model:
# objects of 10-67% of a 64 px image (a third on average), 2-3 per image, thin ones a third as often as others.
# A perfect alpha on a 16x16 latent grid, up-sampled, scores about a quarter of the empty matte's SAD on it.
REPLICATION_LAYOUT = SceneLayout(max_instances=3, object_scale=2.6, thin_weight=1 / 3, paraphrase=True)

SUPERSAMPLE = 3  # thin structures are drawn at 3x and box-filtered: sub-pixel strands get fractional alpha


@dataclass
class Instance:
    """One object of a scene: what the text can say about it, and how it is drawn."""

    category: str
    color: str
    size: str
    material: str  # "solid", "transparent", "fuzzy", "smoky", "meshed"
    blurry: bool
    center: Tuple[float, float]
    radius: float
    angle: float
    seed: int
    alpha: Optional[np.ndarray] = None  # visible alpha, float32 (H, W)
    coverage: Optional[np.ndarray] = None  # own alpha before occlusion, float32 (H, W)
    centroid: Optional[Tuple[float, float]] = None  # alpha-weighted centre of the visible alpha
    texts: List[str] = field(default_factory=list)

    cell: Optional[Tuple[int, int]] = None  # (column, row) of the centroid in a 3x3 grid of the image

    def attribute(self, name: str) -> Any:
        if name == "hpos":  # positions are what tells identical twins apart
            return H_WORDS[self.cell[0]]
        if name == "vpos":
            return V_WORDS[self.cell[1]]
        return getattr(self, name)


# --------------------------------------------------------------------------------------------------------------
# Textures and backgrounds
# --------------------------------------------------------------------------------------------------------------


def fractal_noise(rng: np.random.Generator, height: int, width: int, octaves: int = 4, base: int = 3) -> np.ndarray:
    """Smooth multi-octave value noise in [0, 1]: random grids upsampled bicubically and summed with halving weights."""
    total = np.zeros((height, width), np.float32)
    weight, norm = 1.0, 0.0
    for octave in range(octaves):
        cells = base * 2**octave
        grid = rng.random((cells + 1, cells + 1), dtype=np.float32)
        total += weight * np.asarray(Image.fromarray(grid, mode="F").resize((width, height), Image.BICUBIC))
        norm += weight
        weight *= 0.5
    total /= norm
    lo, hi = total.min(), total.max()
    return (total - lo) / max(hi - lo, 1e-6)


def _jitter(rng: np.random.Generator, rgb: Sequence[int], amount: float = 18.0) -> np.ndarray:
    return np.clip(np.asarray(rgb, np.float32) + rng.normal(0, amount, 3), 0, 255)


def make_background(rng: np.random.Generator, size: int, camouflage: Optional[str] = None) -> np.ndarray:
    """A natural-looking textured background (terrain, wood grain, sky over ground, or bokeh), float32 RGB 0..255."""
    palette = [_jitter(rng, COLORS[name], 30) for name in rng.choice(list(COLORS), 3, replace=False)]
    if camouflage is not None:  # share an instance's colour so colour alone does not separate it
        palette[int(rng.integers(3))] = _jitter(rng, COLORS[camouflage], 12)
    kind = int(rng.integers(4))
    noise = fractal_noise(rng, size, size, octaves=5, base=2)[..., None]
    if kind == 0:  # terrain: three colours blended by noise
        other = fractal_noise(rng, size, size, octaves=3, base=3)[..., None]
        image = palette[0] * noise + palette[1] * (1 - noise)
        image = image * (0.6 + 0.4 * other) + palette[2] * 0.4 * (1 - other)
    elif kind == 1:  # wood grain / fabric stripes warped by noise
        yy, xx = np.mgrid[:size, :size].astype(np.float32)
        theta = rng.uniform(0, np.pi)
        freq = rng.uniform(0.05, 0.25)
        phase = (xx * np.cos(theta) + yy * np.sin(theta)) * freq + 6.0 * noise[..., 0]
        stripes = (0.5 + 0.5 * np.sin(phase))[..., None]
        image = palette[0] * stripes + palette[1] * (1 - stripes)
    elif kind == 2:  # sky over ground with a noisy horizon
        yy = np.linspace(0, 1, size, dtype=np.float32)[:, None, None]
        horizon = rng.uniform(0.35, 0.7) + 0.15 * (noise - 0.5)
        ground = np.clip((yy - horizon) * 12 + 0.5, 0, 1)
        sky = palette[0] * (1 - 0.5 * yy) + 255 * 0.3 * yy
        image = sky * (1 - ground) + palette[1] * (0.7 + 0.5 * noise) * ground
    else:  # out-of-focus bokeh: blurry blobs that belong to the background, never instances
        canvas = Image.new("RGB", (size, size), tuple(int(c) for c in palette[0]))
        draw = ImageDraw.Draw(canvas)
        for _ in range(int(rng.integers(6, 16))):
            r = rng.uniform(0.03, 0.12) * size
            x, y = rng.uniform(0, size, 2)
            colour = tuple(int(c) for c in _jitter(rng, palette[int(rng.integers(1, 3))], 25))
            draw.ellipse((x - r, y - r, x + r, y + r), fill=colour)
        small = canvas.resize((max(size // 8, 1), max(size // 8, 1)), Image.BILINEAR)
        blobs = np.asarray(small.resize((size, size), Image.BICUBIC), np.float32)
        image = 0.35 * palette[0] * (0.6 + 0.4 * noise) + 0.65 * blobs
    fine = fractal_noise(rng, size, size, octaves=2, base=32)[..., None]
    image = image * (0.9 + 0.2 * fine)
    return np.clip(image, 0, 255).astype(np.float32)


# --------------------------------------------------------------------------------------------------------------
# Instance renderers: each returns (alpha float32 (h, w), colour float32 (h, w, 3)) for a box of the image
# --------------------------------------------------------------------------------------------------------------


def _local_coords(box: Tuple[int, int, int, int], inst: Instance) -> Tuple[np.ndarray, np.ndarray]:
    x0, y0, x1, y1 = box
    yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    dx, dy = xx + 0.5 - inst.center[0], yy + 0.5 - inst.center[1]
    c, s = math.cos(inst.angle), math.sin(inst.angle)
    return c * dx + s * dy, -s * dx + c * dy


def _sdf(inst: Instance, u: np.ndarray, v: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Signed distance (pixels, negative inside) of the solid shapes."""
    r = inst.radius
    if inst.category in ("ball", "bubble"):
        return np.hypot(u, v) - r
    if inst.category in ("box", "glass", "veil"):
        half_w, half_h = r, r * (0.65 if inst.category == "glass" else 0.85)
        corner = 0.2 * r
        qx, qy = np.abs(u) - half_w + corner, np.abs(v) - half_h + corner
        outside = np.hypot(np.maximum(qx, 0), np.maximum(qy, 0))
        return outside + np.minimum(np.maximum(qx, qy), 0) - corner
    if inst.category == "star":
        theta = np.arctan2(v, u)
        spikes = np.abs(np.cos(2.5 * theta)) ** 3
        return np.hypot(u, v) - r * (0.5 + 0.5 * spikes)
    if inst.category == "ring":
        return np.abs(np.hypot(u, v) - 0.75 * r) - 0.25 * r
    if inst.category == "triangle":
        dists = [u * math.cos(a) + v * math.sin(a) - 0.55 * r for a in (np.pi / 2, np.pi * 7 / 6, np.pi * 11 / 6)]
        return np.maximum(np.maximum(dists[0], dists[1]), dists[2])
    raise ValueError(f"no signed distance for category {inst.category!r}")


def _edge_width(inst: Instance, rng: np.random.Generator) -> float:
    return float(rng.uniform(3.0, 9.0)) if inst.blurry else 1.0


def _shaded_colour(inst: Instance, u: np.ndarray, v: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    base = _jitter(rng, COLORS[inst.color], 10)
    light = 1.0 + 0.25 * np.clip((-u - v) / (1.5 * inst.radius), -1, 1)
    h, w = u.shape
    texture = 0.92 + 0.16 * fractal_noise(rng, h, w, octaves=2, base=4)
    return np.clip(base * (light * texture)[..., None], 0, 255)


def _render_solid(inst: Instance, box, rng: np.random.Generator) -> Tuple[np.ndarray, np.ndarray]:
    u, v = _local_coords(box, inst)
    sdf = _sdf(inst, u, v, rng)
    alpha = np.clip(0.5 - sdf / _edge_width(inst, rng), 0, 1)
    colour = _shaded_colour(inst, u, v, rng)
    if inst.material == "transparent":  # glassy variant: a see-through body with a more opaque rim
        body = rng.uniform(0.3, 0.6)
        rim = np.clip(1.0 + sdf / max(0.12 * inst.radius, 2.0), 0, 1)
        alpha = alpha * (body + (1 - body) * rim)
    return alpha.astype(np.float32), colour


def _render_transparent(inst: Instance, box, rng: np.random.Generator) -> Tuple[np.ndarray, np.ndarray]:
    u, v = _local_coords(box, inst)
    h, w = u.shape
    colour = _shaded_colour(inst, u, v, rng)
    if inst.category == "smoke":
        dist = np.hypot(u, v * 1.3) / inst.radius
        envelope = np.clip(1.2 - dist, 0, 1) ** 1.5
        alpha = envelope * fractal_noise(rng, h, w, octaves=4, base=3) ** 1.3 * rng.uniform(0.7, 1.0) * 1.6
        return np.clip(alpha, 0, 1).astype(np.float32), colour
    sdf = _sdf(inst, u, v, rng)
    inside = np.clip(0.5 - sdf / _edge_width(inst, rng), 0, 1)
    if inst.category == "bubble":  # thin film: transparent centre, denser towards the rim, a bright highlight
        radial = np.clip(np.hypot(u, v) / inst.radius, 0, 1)
        alpha = inside * (rng.uniform(0.08, 0.2) + 0.8 * radial**4)
        spot = np.exp(-((u + 0.4 * inst.radius) ** 2 + (v + 0.4 * inst.radius) ** 2) / (0.03 * inst.radius**2))
        alpha = np.maximum(alpha, inside * spot * 0.9)
        colour = colour * (1 - spot[..., None]) + 255 * spot[..., None]
    elif inst.category == "glass":
        body = rng.uniform(0.15, 0.4)
        rim = np.clip(1.0 + sdf / max(0.08 * inst.radius, 1.5), 0, 1)
        streak = np.clip(1 - np.abs(u + v - 0.3 * inst.radius) / (0.1 * inst.radius), 0, 1) * 0.5
        alpha = inside * np.clip(body + (1 - body) * rim + streak, 0, 1)
    else:  # veil: folds modulate a mostly see-through sheet
        folds = 0.5 + 0.5 * np.sin(u / inst.radius * rng.uniform(6, 12) + 3 * fractal_noise(rng, h, w, 2, 2))
        alpha = inside * (rng.uniform(0.25, 0.45) + 0.3 * folds)
    return alpha.astype(np.float32), colour


def _strand(draw: ImageDraw.ImageDraw, points: List[Tuple[float, float]], width: int) -> None:
    draw.line(points, fill=255, width=width, joint="curve")


def _render_thin(inst: Instance, box, rng: np.random.Generator) -> Tuple[np.ndarray, np.ndarray]:
    x0, y0, x1, y1 = box
    h, w = y1 - y0, x1 - x0
    ss = SUPERSAMPLE
    canvas = Image.new("L", (w * ss, h * ss), 0)
    draw = ImageDraw.Draw(canvas)
    cx, cy = (inst.center[0] - x0) * ss, (inst.center[1] - y0) * ss
    r = inst.radius * ss
    u, v = _local_coords(box, inst)
    if inst.category == "furball":  # a body with hundreds of curved hairs growing outwards
        body = 0.55 * r
        draw.ellipse((cx - body, cy - body, cx + body, cy + body), fill=255)
        for _ in range(int(rng.integers(180, 320))):
            a = rng.uniform(0, 2 * np.pi)
            length = rng.uniform(0.35, 0.55) * r
            curl = rng.normal(0, 0.5)
            pts, px, py = (
                [],
                cx + body * 0.9 * math.cos(a),
                cy + body * 0.9 * math.sin(a),
            )
            for k in range(4):
                pts.append((px, py))
                a += curl / 3
                px += length / 3 * math.cos(a)
                py += length / 3 * math.sin(a)
            pts.append((px, py))
            _strand(draw, pts, int(rng.integers(1, 3)))
    elif inst.category == "tassel":  # long wavy hair strands hanging from a knot
        top = cy - 0.9 * r
        knot = 0.18 * r
        draw.ellipse((cx - knot, top - knot, cx + knot, top + knot), fill=255)
        for _ in range(int(rng.integers(70, 130))):
            spread = rng.normal(0, 0.35)
            phase, amp, freq = (
                rng.uniform(0, 2 * np.pi),
                rng.uniform(0.02, 0.08) * r,
                rng.uniform(2, 5),
            )
            length = rng.uniform(1.4, 1.9) * r
            pts = []
            for k in range(9):
                t = k / 8
                pts.append(
                    (
                        cx + spread * r * t + amp * math.sin(freq * t * 2 * np.pi + phase),
                        top + length * t,
                    )
                )
            _strand(draw, pts, int(rng.integers(1, 3)))
    elif inst.category == "dandelion":  # a seed head: thin radial filaments ending in small tufts, and a stem
        head = 0.1 * r
        draw.line(
            [(cx, cy), (cx + rng.normal(0, 0.1) * r, cy + 1.6 * r)],
            fill=255,
            width=max(ss, 2),
        )
        draw.ellipse((cx - head, cy - head, cx + head, cy + head), fill=255)
        for _ in range(int(rng.integers(60, 110))):
            a = rng.uniform(0, 2 * np.pi)
            length = rng.uniform(0.75, 1.0) * r
            ex, ey = cx + length * math.cos(a), cy + length * math.sin(a)
            draw.line([(cx, cy), (ex, ey)], fill=200, width=1)
            for b in np.linspace(-0.6, 0.6, 5):
                draw.line(
                    [
                        (ex, ey),
                        (
                            ex + 0.12 * r * math.cos(a + b),
                            ey + 0.12 * r * math.sin(a + b),
                        ),
                    ],
                    fill=255,
                )
    elif inst.category == "net":  # a rotated mesh of sub-pixel threads inside a frame
        # the mesh scales with the net, so a net drawn larger is a coarser mesh, not more threads
        spacing = rng.uniform(0.3, 0.55) * r
        width = int(rng.integers(1, 3))
        c, s = math.cos(inst.angle), math.sin(inst.angle)
        extent = int(2 * r / spacing) + 1
        for k in range(-extent, extent + 1):
            off = k * spacing
            for ax, ay in ((c, s), (-s, c)):
                bx, by = cx + off * -ay, cy + off * ax
                draw.line(
                    [
                        (bx - 2 * r * ax, by - 2 * r * ay),
                        (bx + 2 * r * ax, by + 2 * r * ay),
                    ],
                    fill=255,
                    width=width,
                )
    else:
        raise ValueError(f"no thin-structure renderer for {inst.category!r}")
    alpha = np.asarray(canvas.resize((w, h), Image.BOX), np.float32) / 255.0
    if inst.category == "net":  # clip the mesh to a rounded box and add an opaque frame
        sdf = _sdf(Instance(**{**inst.__dict__, "category": "box"}), u, v, rng)
        inside = np.clip(0.5 - sdf, 0, 1)
        frame = np.clip(1.0 - np.abs(sdf + 1.5) / 1.5, 0, 1)
        alpha = np.maximum(alpha * inside, frame)
    colour = _shaded_colour(inst, u, v, rng)
    return np.clip(alpha, 0, 1).astype(np.float32), colour


def render_instance(inst: Instance, size: int) -> Tuple[Tuple[int, int, int, int], np.ndarray, np.ndarray]:
    """Draws ``inst`` into its bounding box; returns (box, alpha, colour)."""
    rng = np.random.default_rng(inst.seed)
    reach = inst.radius * (2.1 if inst.category in ("tassel", "dandelion") else 1.6) + 8
    x0, y0 = max(int(inst.center[0] - reach), 0), max(int(inst.center[1] - reach), 0)
    x1, y1 = min(int(inst.center[0] + reach) + 1, size), min(int(inst.center[1] + reach) + 1, size)
    box = (x0, y0, x1, y1)
    if inst.category in THIN_THINGS:
        alpha, colour = _render_thin(inst, box, rng)
    elif inst.category in TRANSPARENT_THINGS:
        alpha, colour = _render_transparent(inst, box, rng)
    else:
        alpha, colour = _render_solid(inst, box, rng)
    return box, alpha, colour


# --------------------------------------------------------------------------------------------------------------
# Scenes
# --------------------------------------------------------------------------------------------------------------

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
    if "material" not in fixed and category in SOLID_SHAPES and rng.random() < 0.3:
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


# ---------------------------------------------------------------------------- referring expressions

H_WORDS = ("left", "center", "right")
V_WORDS = ("top", "middle", "bottom")


def _cell(inst: Instance, size: int) -> Tuple[int, int]:
    cx, cy = _centroid(inst)
    return min(int(3 * cx / size), 2), min(int(3 * cy / size), 2)


def _centroid(inst: Instance) -> Tuple[float, float]:
    if inst.centroid is None:
        ys, xs = np.nonzero(inst.alpha > 0.05)
        if len(xs) == 0:
            return inst.center
        w = inst.alpha[ys, xs]
        inst.centroid = (
            float((xs * w).sum() / w.sum()),
            float((ys * w).sum() / w.sum()),
        )
    return inst.centroid


def _absolute_phrase(cell: Tuple[int, int]) -> str:
    h, v = cell
    if (h, v) == (1, 1):
        return "in the center of the image"
    if h == 1:
        return f"at the {V_WORDS[v]} of the image"
    if v == 1:
        return f"on the {H_WORDS[h]} side of the image"
    return f"in the {V_WORDS[v]} {H_WORDS[h]} corner of the image"


# tried in this order, fewest first; positions come last so they are used only for twins that look the same
ATTRIBUTE_ORDER = ("color", "size", "material", "blurry", "hpos", "vpos")


def _matches(inst: Instance, desc: Dict[str, Any]) -> bool:
    return all(inst.attribute(k) == v for k, v in desc.items())


def _noun_phrase(desc: Dict[str, Any]) -> str:
    # the centre column reads "center" and the middle row "middle": "the middle ball" names one row only
    words = [desc[k] for k in ("vpos", "hpos") if k in desc]
    if desc.get("size"):
        words.append(desc["size"])
    if desc.get("blurry"):
        words.append("blurry")
    if "color" in desc:
        words.append(desc["color"])
    if desc.get("material") in ("transparent",) and desc["category"] in SOLID_SHAPES:
        words.append("transparent")
    elif desc.get("material") == "solid":
        words.append("solid")
    words.append(desc["category"])
    return " ".join(words)


def _minimal_description(
    target: Instance,
    pool: List[Instance],
    required: Sequence[str] = (),
    test=lambda inst: True,
) -> Optional[Dict[str, Any]]:
    """Fewest attributes (beyond category and ``required``) such that only ``target`` matches and passes ``test``."""
    optional = [a for a in ATTRIBUTE_ORDER if a not in required]
    for count in range(len(optional) + 1):
        for extra in itertools.combinations(optional, count):
            desc = {"category": target.category}
            desc.update({a: target.attribute(a) for a in (*required, *extra)})
            if "blurry" in desc and not desc["blurry"]:
                continue  # "not blurry" is not something we say
            hits = [inst for inst in pool if _matches(inst, desc) and test(inst)]
            if hits == [target]:
                return desc
    return None


def _relations(a: Instance, b: Instance, size: int, order: Dict[int, int]) -> List[str]:
    """Relations that hold from ``a`` to ``b``: spatial (clear margins) and depth (only where they overlap)."""
    key = (id(a), id(b), "relations")
    if key not in order:
        order[key] = _compute_relations(a, b, size, order)
    return order[key]


def _compute_relations(a: Instance, b: Instance, size: int, order: Dict[Any, Any]) -> List[str]:
    (ax, ay), (bx, by) = _centroid(a), _centroid(b)
    margin = 0.12 * size
    out = []
    if ax < bx - margin:
        out.append("to the left of")
    if ax > bx + margin:
        out.append("to the right of")
    if ay < by - margin:
        out.append("above")
    if ay > by + margin:
        out.append("below")
    overlap = float(np.minimum(a.coverage, b.coverage).sum())
    if overlap > 20:
        out.append("in front of" if order[id(a)] > order[id(b)] else "behind")
    return out


def describe(instances: List[Instance], size: int, rng: np.random.Generator) -> bool:
    """Writes four unique expressions per instance; returns False when some instance cannot be disambiguated."""
    order = {id(inst): k for k, inst in enumerate(instances)}
    for inst in instances:
        inst.cell = _cell(inst, size)
    for target in instances:
        others = [i for i in instances if i is not target]
        keyword = _minimal_description(target, instances)
        basic = _minimal_description(target, instances, required=("color",))
        if basic is not None and len(basic) < 4:  # richer basic expressions, like RefMatte's
            for extra in ("size", "material"):
                basic.setdefault(extra, target.attribute(extra))
        if basic is not None and target.blurry:
            basic["blurry"] = True
        cell = _cell(target, size)
        absolute = _minimal_description(target, instances, test=lambda inst: _cell(inst, size) == cell)
        relative_text = None
        for ref in rng.permutation(len(others)) if others else []:
            ref_inst = others[int(ref)]
            ref_desc = _minimal_description(ref_inst, instances)
            relations = _relations(target, ref_inst, size, order)
            if ref_desc is None or not relations:
                continue
            relation = relations[int(rng.integers(len(relations)))]
            desc = _minimal_description(
                target,
                others + [target],
                test=lambda inst: inst is not ref_inst and relation in _relations(inst, ref_inst, size, order),
            )
            # "the center box left of the center box" is true but unreadable: try another reference
            if desc is not None and _noun_phrase(desc) != _noun_phrase(ref_desc):
                relative_text = f"the {_noun_phrase(desc)} {relation} the {_noun_phrase(ref_desc)}"
                break
        if keyword is None or basic is None or absolute is None or relative_text is None:
            return False
        target.texts = [
            _noun_phrase(keyword),
            _basic_expression(basic, rng),
            f"the {_noun_phrase(absolute)} {_absolute_phrase(cell)}",
            relative_text,
        ]
    return True


def _basic_expression(desc: Dict[str, Any], rng: np.random.Generator) -> str:
    """An attribute expression in one of three forms: "the red ball", "a red ball", "the ball which is red"."""
    form = int(rng.integers(3))
    if form < 2:
        phrase = _noun_phrase(desc)
        article = "the" if form == 0 else ("an" if phrase[0] in "aeiou" else "a")
        return f"{article} {phrase}"
    position = {k: desc[k] for k in ("vpos", "hpos") if k in desc}
    rest = {k: v for k, v in desc.items() if k not in position}
    words = _noun_phrase(rest).split()[:-1]
    head = _noun_phrase({"category": desc["category"], **position})
    if not words:
        return f"the {head}"
    attrs = words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]
    return f"the {head} which is {attrs}"


# Wordings a person uses for what the generator says, tried on each expression (each applies with probability
# 1/2). They keep the meaning, so an expression stays unique to its instance.
PARAPHRASES: Tuple[Tuple[str, Tuple[str, ...]], ...] = (
    (r"\bball\b", ("sphere",)),
    (r"\bbox\b", ("cube",)),
    (r"\bring\b", ("hoop",)),
    (r"\bglass\b", ("vase",)),
    (r"\bnet\b", ("mesh",)),
    (r"\bsmoke\b", ("mist",)),
    (r"\bgray\b", ("grey",)),
    (r"\blarge\b", ("big",)),
    (r"\bsmall\b", ("little",)),
    (r"\bblurry\b", ("blurred",)),
    (r"\btransparent\b", ("see-through", "clear")),
    (
        r"^the (top|bottom)\b",
        None,
    ),  # prenominal rows: "the top ball" -> "the upper ball"
    (r"\b(top|bottom) (left|right|center)\b", None),
    (r"\bcorner of the image\b", ("corner",)),
    (r"\bof the image\b", ("of the picture", "of the photo")),
    (r"\bto the (left|right) of\b", None),  # "left of"
    (r"\babove\b", ("over",)),
    (r"\bbelow\b", ("under", "beneath")),
)
_ROWS = {"top": "upper", "bottom": "lower"}


def paraphrase(text: str, rng: np.random.Generator) -> str:
    """``text`` with some of :data:`PARAPHRASES` applied; "top"/"bottom" in front of a noun become "upper"/"lower"."""
    for pattern, alternatives in PARAPHRASES:
        match = re.search(pattern, text)
        if match is None or rng.random() < 0.5:
            continue
        if alternatives is not None:
            new = str(rng.choice(alternatives))
        elif match.group(0).startswith("to the"):
            new = f"{match.group(1)} of"
        else:
            new = match.group(0).replace(match.group(1), _ROWS[match.group(1)])
        text = text[: match.start()] + new + text[match.end() :]
    return text


def generate_scene(
    seed: Sequence[int],
    size: int = 256,
    max_instances: Optional[int] = None,
    max_tries: int = 20,
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
        # every instance must stay recognisable: at least 40% of its own alpha visible, and some solid part
        if any(i.alpha.sum() < 0.4 * i.coverage.sum() or i.alpha.sum() < 40 or i.alpha.max() < 0.3 for i in instances):
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
    raise RuntimeError(f"could not draw an unambiguous scene from seed {list(seed)} in {max_tries} tries")


# --------------------------------------------------------------------------------------------------------------
# datasets builder
# --------------------------------------------------------------------------------------------------------------

SPLIT_IDS = {"train": 0, "test": 1}
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
) -> List[Dict[str, Any]]:
    """The rows (one per instance, :data:`~diffusers_matte.data.common.MATTING_FEATURES`) of one scene.

    ``image_format`` is ``"png"`` (lossless, about 110 KB per 256x256 image) or ``"jpeg"`` (quality 95, about
    17 KB, like the JPEG photos of the real sets). Alphas are always PNG.
    """
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
    return rows


@dataclass
class SyntheticMattingConfig(datasets.BuilderConfig):
    """Builder parameters; each combination is cached separately."""

    seed: int = 0
    num_train: int = 2000
    num_test: int = 200
    image_size: int = 256
    image_format: str = "png"
    layout: SceneLayout = SceneLayout()
    # Part of the `datasets` cache key: bump it whenever generation changes, so stale caches are not reused.
    version: datasets.Version = datasets.Version("1.2.0")


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
            for row in scene_rows(cfg.seed, split, index, cfg.image_size, cfg.image_format, cfg.layout):
                yield row["instance_id"], row


def load_synthetic_matting(
    num_train: int = 2000,
    num_test: int = 200,
    seed: int = 0,
    image_size: int = 256,
    cache_dir: Optional[str] = None,
    image_format: str = "png",
    layout: Optional[SceneLayout] = None,
) -> datasets.DatasetDict:
    """Generates (or loads from the ``datasets`` cache) the synthetic set: ``DatasetDict`` with train and test.

    Args:
        num_train / num_test: number of *images* per split; each gives 2 to 4 rows (one per instance).
        seed: base seed; image ``i`` of a split is drawn from ``[seed, split id, i]``, so any subset is reproducible.
        image_size: side of the square images.
        cache_dir: ``datasets`` cache folder (default: the Hugging Face cache).
        image_format: ``"png"`` (lossless) or ``"jpeg"`` (quality 95, about 6x smaller).
        layout: number and size of the objects, and wording (default :class:`SceneLayout`).
    """
    if num_train < 0 or num_test < 0:
        raise ValueError(f"num_train and num_test must be >= 0, got {num_train} and {num_test}")
    if image_size < 64:
        raise ValueError(f"image_size must be at least 64, got {image_size}")
    if image_format not in IMAGE_FORMATS:
        raise ValueError(f"image_format must be one of {sorted(IMAGE_FORMATS)}, got {image_format!r}")
    builder = SyntheticMatting(
        cache_dir=cache_dir,
        config_name="default",
        seed=seed,
        num_train=num_train,
        num_test=num_test,
        image_size=image_size,
        image_format=image_format,
        layout=layout or SceneLayout(),
    )
    builder.download_and_prepare()
    return builder.as_dataset()


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
    parser.add_argument(
        "--object_scale",
        type=float,
        default=defaults.object_scale,
        help="multiplies the object radii",
    )
    parser.add_argument(
        "--thin_weight",
        type=float,
        default=defaults.thin_weight,
        help="sampling weight of each thin category (1: as any other)",
    )
    parser.add_argument(
        "--paraphrase",
        action="store_true",
        help="vary the expressions' wording with synonyms",
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
        SceneLayout(args.max_instances, args.object_scale, args.thin_weight, args.paraphrase),
    )
    elapsed = time.perf_counter() - start
    dataset.save_to_disk(str(output))
    summary = {split: {"instances": len(ds), "images": len(set(ds["image_id"]))} for split, ds in dataset.items()}
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


if __name__ == "__main__":
    main()
