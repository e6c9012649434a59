# Copyright 2026 The diffusers-matte authors. Licensed under the Apache License, Version 2.0.
"""The synthetic set's things: categories, colours, the :class:`Instance` record, textured backgrounds, and the
renderers that draw each kind of instance (solid, transparent, thin) with its alpha."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
from PIL import Image, ImageDraw

SOURCE = "synthetic"


TEXT_TYPES = ("keyword", "basic", "absolute", "relative")


# the 3x3 grid of image positions the expressions name
H_WORDS = ("left", "center", "right")
V_WORDS = ("top", "middle", "bottom")

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
