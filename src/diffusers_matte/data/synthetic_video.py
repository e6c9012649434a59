# Copyright 2026 The diffusers-matte authors. Licensed under the Apache License, Version 2.0.
"""Synthetic moving-object clips with a ground-truth alpha per frame, made from the synthetic set's scenes.

A clip starts from one scene of `diffusers_matte.data.synthetic` (its instances, their referring expressions, a
textured background): the background stays still, every instance moves at a constant velocity, bouncing off the
borders, and turns slowly; the frames are re-rendered each time, so occlusions change as the instances pass each
other and each frame's alpha of the named instance is exact. The prompt is the named instance's attribute
expression without position words (positions change as it moves). Fresh sensor noise on every frame makes the
picture flicker slightly, as a camera's does.

    python -m diffusers_matte.data.synthetic_video --output clip.mkv --alpha-output clip_alpha.mkv --seconds 10

writes the clip and its ground truth as lossless FFV1 videos (Matroska) and prints the prompt.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, List, Optional, Sequence, Tuple

import numpy as np

from .synthetic import REPLICATION_LAYOUT, Instance, SceneLayout, generate_scene, make_background, paint, render_layers

# Words that place an instance in the image: an expression with one stops being true when the instance moves.
_POSITION_WORDS = re.compile(r"\b(left|right|center|centre|middle|top|bottom|upper|lower|corner)\b")


@dataclass(frozen=True)
class ClipFrame:
    """One frame: the picture, uint8 `(H, W, 3)`, and the named instance's visible alpha, float32 `(H, W)`."""

    image: np.ndarray
    alpha: np.ndarray


@dataclass
class SyntheticClip:
    """A moving-object clip (see the module docstring); `frames()` renders it, deterministically, one frame at a time.

    Args:
        prompt: the expression that names the target instance.
        target: index of the target in `instances`.
        instances: the scene's instances at frame 0, back to front.
        velocities: per instance, `(dx, dy, d_angle)` per frame, in pixels and radians.
        background: float32 `(size, size, 3)` in 0..255.
        num_frames, fps, size: length, rate and frame size.
        noise_sigma: standard deviation of the per-frame sensor noise, in 0..255 units.
        seed: the noise's seed.
    """

    prompt: str
    target: int
    instances: List[Instance]
    velocities: List[Tuple[float, float, float]]
    background: np.ndarray
    num_frames: int
    fps: int
    size: int
    noise_sigma: float
    seed: int

    def instances_at(self, t: int) -> List[Instance]:
        """The instances at frame `t`: positions advanced by `t` steps with reflection at the borders."""
        moved = []
        for inst, (dx, dy, da) in zip(self.instances, self.velocities):
            margin = 0.6 * inst.radius
            center = tuple(_bounce(c + v * t, margin, self.size - margin) for c, v in zip(inst.center, (dx, dy)))
            moved.append(
                dataclasses.replace(
                    inst, center=center, angle=inst.angle + da * t, alpha=None, coverage=None, centroid=None
                )
            )
        return moved

    def frame(self, t: int) -> ClipFrame:
        """Render frame `t` (any frame, in any order)."""
        instances = self.instances_at(t)
        image = paint(self.background, render_layers(instances, self.size))
        if self.noise_sigma > 0:
            rng = np.random.default_rng([self.seed, t])
            image = image + rng.standard_normal(image.shape, dtype=np.float32) * self.noise_sigma
        picture = np.clip(image + 0.5, 0, 255).astype(np.uint8)
        return ClipFrame(picture, instances[self.target].alpha.astype(np.float32))

    def frames(self) -> Iterator[ClipFrame]:
        """The frames in order, rendered one at a time."""
        for t in range(self.num_frames):
            yield self.frame(t)


def _bounce(x: float, lo: float, hi: float) -> float:
    """`x` folded into [lo, hi] as a ball bouncing between two walls."""
    span = hi - lo
    if span <= 0:
        return (lo + hi) / 2
    phase = (x - lo) % (2 * span)
    return lo + (phase if phase <= span else 2 * span - phase)


def _target_and_prompt(instances: Sequence[Instance]) -> Optional[Tuple[int, str]]:
    """The first instance whose attribute expression has no position word, with that expression."""
    for index, inst in enumerate(instances):
        for text in (inst.texts[1], inst.texts[0]):  # the attribute ("basic") expression, else the keyword
            if not _POSITION_WORDS.search(text):
                return index, text
    return None


def make_clip(
    seed: int = 0,
    seconds: float = 2.0,
    fps: int = 24,
    size: int = 128,
    speed: float = 0.02,
    noise_sigma: float = 2.0,
    layout: SceneLayout = REPLICATION_LAYOUT,
    max_tries: int = 50,
) -> SyntheticClip:
    """A deterministic moving-object clip from `seed`.

    Args:
        seed: chooses the scene, the motion and the noise.
        seconds, fps: the clip's length and frame rate.
        size: frame size in pixels (square).
        speed: the target's speed, as a fraction of the frame size per frame (0.02 at 24 fps crosses the frame in
            about two seconds); the other instances move at 30-100% of it.
        noise_sigma: per-frame sensor noise (0..255 units); 0 for none.
        layout: the scene layout (default: the demonstration model's, `REPLICATION_LAYOUT`).
        max_tries: scenes drawn until one has an instance that a position-free expression names.
    """
    if seconds <= 0 or fps <= 0 or size < 16:
        raise ValueError(f"need seconds > 0, fps > 0 and size >= 16, got {seconds}, {fps} and {size}")
    rng = np.random.default_rng([seed, 7])
    for attempt in range(max_tries):
        scene = generate_scene([seed, 3, attempt], size=size, layout=layout)
        choice = _target_and_prompt(scene.instances)
        if choice is not None:
            break
    else:
        raise RuntimeError(f"no scene of seed {seed} has an instance named without position words")
    target, prompt = choice
    velocities = []
    for index in range(len(scene.instances)):
        pixels = speed * size * (1.0 if index == target else rng.uniform(0.3, 1.0))
        direction = rng.uniform(0, 2 * math.pi)
        velocities.append((pixels * math.cos(direction), pixels * math.sin(direction), rng.uniform(-0.04, 0.04)))
    return SyntheticClip(
        prompt=prompt,
        target=target,
        instances=scene.instances,
        velocities=velocities,
        background=make_background(rng, size),
        num_frames=max(1, round(seconds * fps)),
        fps=fps,
        size=size,
        noise_sigma=noise_sigma,
        seed=seed,
    )


def write_clip(clip: SyntheticClip, video_path: str | Path, alpha_path: str | Path | None = None) -> None:
    """Write the clip (and, with `alpha_path`, its ground-truth alpha as 8-bit grayscale) as lossless FFV1 videos
    at the clip's frame rate, one frame at a time. The container follows the extension (.mkv is safest)."""
    from ..video import VideoWriter

    size = (clip.size, clip.size, clip.fps)
    video = VideoWriter(video_path, *size, codec="ffv1", pix_fmt="bgr0", input_format="rgb24")
    alpha = (
        None
        if alpha_path is None
        else VideoWriter(alpha_path, *size, codec="ffv1", pix_fmt="gray", input_format="gray")
    )
    try:
        for frame in clip.frames():
            video.write(frame.image)
            if alpha is not None:
                alpha.write(np.clip(frame.alpha * 255.0 + 0.5, 0, 255).astype(np.uint8))
    finally:
        video.close()
        if alpha is not None:
            alpha.close()


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(description="Write a synthetic moving-object clip and its ground-truth alpha.")
    parser.add_argument("--output", required=True, help="the clip (lossless FFV1; .mkv)")
    parser.add_argument("--alpha-output", default=None, help="the ground-truth alpha of the named instance (.mkv)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--fps", type=int, default=24)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--speed", type=float, default=0.02, help="the target's speed, frame sizes per frame")
    parser.add_argument("--noise-sigma", type=float, default=2.0)
    args = parser.parse_args(argv)
    clip = make_clip(args.seed, args.seconds, args.fps, args.size, args.speed, args.noise_sigma)
    write_clip(clip, args.output, args.alpha_output)
    print(json.dumps({"prompt": clip.prompt, "frames": clip.num_frames, "fps": clip.fps, "size": clip.size}))


if __name__ == "__main__":
    main()
