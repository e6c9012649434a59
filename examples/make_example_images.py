# Copyright 2026 The diffusers-matte authors. Licensed under the Apache License, Version 2.0.
"""Draws the example images of `examples/images/`: scenes of the synthetic test split of seed 1 (the
demonstration model trains on seed 0), in the layout the demonstration model is trained on.

    python examples/make_example_images.py --output_dir examples/images

`scene(name)` gives the whole scene, with each instance's alpha, for tests and for checking a prediction.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Optional, Sequence

from PIL import Image

from diffusers_matte.data.synthetic import (
    REPLICATION_LAYOUT,
    SPLIT_IDS,
    Scene,
    generate_scene,
)

SEED = 1
SIZE = 64
LAYOUT = REPLICATION_LAYOUT  # the demonstration model's training layout
# name -> index in the test split, picked by eye for variety: colours, look-alikes, transparent objects (a
# star, a veil, a ring, a vase), a net
SCENES = {
    "triangle_box_star": 44,
    "ring_and_veil": 40,
    "three_rings": 57,
    "net_and_star": 32,
    "two_balls_and_ring": 19,
    "vase_and_box": 10,
}


def scene(name: str) -> Scene:
    if name not in SCENES:
        raise KeyError(f"no example scene {name!r}; known: {sorted(SCENES)}")
    return generate_scene([SEED, SPLIT_IDS["test"], SCENES[name]], SIZE, layout=LAYOUT)


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output_dir", type=Path, default=Path(__file__).parent / "images")
    args = parser.parse_args(argv)
    args.output_dir.mkdir(parents=True, exist_ok=True)
    for name in SCENES:
        Image.fromarray(scene(name).image).save(args.output_dir / f"{name}.png")
        print(args.output_dir / f"{name}.png")


if __name__ == "__main__":
    main()
