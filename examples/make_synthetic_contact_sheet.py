# Copyright 2026 The diffusers-matte authors. Licensed under the Apache License, Version 2.0.
"""Draws examples/synthetic_samples.png: synthetic scenes with each instance's alpha and its four expressions.

    python examples/make_synthetic_contact_sheet.py --output examples/synthetic_samples.png

Scenes are taken from the test split of seed 0 and picked greedily so the sheet shows every category (thin,
semi-transparent and solid) and look-alike twins.
"""

from __future__ import annotations

import argparse
import textwrap
from pathlib import Path
from typing import List, Optional, Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from diffusers_matte.data.synthetic import SPLIT_IDS, TEXT_TYPES, Scene, generate_scene

TILE = 256
TEXT_HEIGHT = 118
MAX_INSTANCES = 4


def pick_scenes(seed: int, count: int, size: int, pool: int = 80) -> List[Scene]:
    """Greedy choice among the first ``pool`` test scenes: new categories first, then scenes with twins."""
    scenes = [generate_scene([seed, SPLIT_IDS["test"], i], size=size) for i in range(pool)]
    chosen, seen = [], set()

    def score(scene: Scene) -> float:
        cats = [inst.category for inst in scene.instances]
        twins = len(cats) - len(set(cats))
        return len(set(cats) - seen) + 0.6 * twins + 0.1 * len(cats)

    for _ in range(count):
        best = max((s for s in scenes if all(s is not c for c in chosen)), key=score)
        chosen.append(best)
        seen |= {inst.category for inst in best.instances}
    return chosen


def draw_sheet(scenes: Sequence[Scene], size: int = TILE) -> Image.Image:
    font = ImageFont.load_default(size=12)
    header = ImageFont.load_default(size=14)
    columns = 1 + MAX_INSTANCES
    row_height = size + TEXT_HEIGHT
    sheet = Image.new("RGB", (columns * size, 28 + len(scenes) * row_height), (250, 250, 250))
    draw = ImageDraw.Draw(sheet)
    titles = ["image"] + [f"instance {k + 1}: alpha + expressions" for k in range(MAX_INSTANCES)]
    for col, title in enumerate(titles):
        draw.text((col * size + 6, 6), title, fill=(0, 0, 0), font=header)
    for row, scene in enumerate(scenes):
        top = 28 + row * row_height
        sheet.paste(Image.fromarray(scene.image).resize((size, size)), (0, top))
        for k, inst in enumerate(scene.instances[:MAX_INSTANCES]):
            left = (k + 1) * size
            alpha = Image.fromarray((inst.alpha * 255 + 0.5).astype(np.uint8)).resize((size, size))
            sheet.paste(alpha.convert("RGB"), (left, top))
            tag = f"{inst.category}, {inst.material}{', blurry' if inst.blurry else ''}"
            draw.text((left + 4, top + 4), tag, fill=(255, 220, 0), font=font)
            y = top + size + 3
            for kind, text in zip(TEXT_TYPES, inst.texts):
                for line in textwrap.wrap(f"{kind[:3]}: {text}", width=40)[:2]:
                    draw.text((left + 4, y), line, fill=(20, 20, 20), font=font)
                    y += 14
        draw.line(
            [(0, top + row_height - 1), (sheet.width, top + row_height - 1)],
            fill=(180, 180, 180),
        )
    return sheet


def main(argv: Optional[Sequence[str]] = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", default="examples/synthetic_samples.png")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--num_scenes", type=int, default=6)
    parser.add_argument("--image_size", type=int, default=TILE)
    args = parser.parse_args(argv)
    sheet = draw_sheet(pick_scenes(args.seed, args.num_scenes, args.image_size))
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(output, optimize=True)
    print(f"wrote {output} ({sheet.width}x{sheet.height})")
    return output


if __name__ == "__main__":
    main()
