# Copyright 2026 The diffusers-matte authors. Licensed under the Apache License, Version 2.0.
"""Draws examples/gallery.png: example images with, for each prompt, the predicted alpha and the cut-out.

    python examples/make_gallery.py --output examples/gallery.png --overwrite

One row per image of the spec (examples/gallery.json): the image, then for each of its prompts the alpha matte and
the RGBA cut-out over a checkerboard, each tile captioned with what it shows, the prompt's kind and the prompt.
The spec is a JSON list of {"image": path relative to the JSON file, "prompts": [...], "kinds": [...]}, one kind
per prompt (colour, category, absolute position, relative position, transparent object, ...); rows may have
different numbers of prompts. The default model is the demonstration checkpoint shipped in the package, loaded as
the `diffusers-matte` command loads it; the run is on CPU in float32 unless --device says otherwise, and gives the
same picture every time.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from diffusers_matte.cli import (
    EXIT_USAGE,
    UsageError,
    load_pipeline,
    read_image,
    resolve_device_and_dtype,
)
from diffusers_matte.pipelines.soft_grounding.image_processor import (
    alpha_to_pil,
    cutout,
    load_image,
)

TILE = 192
MARGIN = 12  # around the sheet
INNER_GAP = 4  # between the alpha and the cut-out of one prompt
GROUP_GAP = 14  # between the image and a prompt's pair of tiles, and between pairs
ROW_GAP = 10
CAPTION_LINES = 4  # one label line ("alpha - colour"), then the prompt wrapped on up to three lines
BACKGROUND = (250, 250, 250)
LABEL_COLOUR = (110, 110, 110)
TEXT_COLOUR = (20, 20, 20)
CHECKER_COLOURS = ((255, 255, 255), (204, 204, 204))


# Layout ----------------------------------------------------------------------------------------------------------


def font_size(tile: int) -> int:
    return max(10, round(tile / 15))


def line_height(tile: int) -> int:
    return font_size(tile) + 3


def caption_height(tile: int) -> int:
    return 4 + CAPTION_LINES * line_height(tile) + 2


def row_height(tile: int) -> int:
    return tile + caption_height(tile)


def sheet_size(prompt_counts: Sequence[int], tile: int) -> Tuple[int, int]:
    """`(width, height)` of a gallery whose rows have these numbers of prompts."""
    pairs = max(prompt_counts)
    width = 2 * MARGIN + tile + pairs * (GROUP_GAP + 2 * tile + INNER_GAP)
    rows = len(prompt_counts)
    height = 2 * MARGIN + rows * row_height(tile) + (rows - 1) * ROW_GAP
    return width, height


def tile_origin(row: int, column: int, tile: int) -> Tuple[int, int]:
    """Top-left corner of a tile: column 0 is the image, then 2k + 1 and 2k + 2 the alpha and the cut-out of
    prompt k."""
    x = MARGIN
    if column > 0:
        pair, second = divmod(column - 1, 2)
        x += tile + GROUP_GAP + pair * (2 * tile + INNER_GAP + GROUP_GAP)
        x += second * (tile + INNER_GAP)
    return x, MARGIN + row * (row_height(tile) + ROW_GAP)


# Pictures --------------------------------------------------------------------------------------------------------


def fit_to_tile(picture: Image.Image, tile: int) -> Image.Image:
    """Scale so the longest edge is `tile` (aspect ratio kept): nearest-neighbour when enlarging, so the pixels
    of small images stay visible, Lanczos when shrinking."""
    width, height = picture.size
    scale = tile / max(width, height)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    if size == picture.size:
        return picture.copy()
    resample = Image.Resampling.NEAREST if scale > 1 else Image.Resampling.LANCZOS
    return picture.resize(size, resample)


def checkerboard(size: Tuple[int, int], square: int) -> Image.Image:
    """An RGBA checkerboard of `size`, the usual backdrop for showing transparency."""
    width, height = size
    ys, xs = np.mgrid[:height, :width]
    odd = ((ys // square + xs // square) % 2).astype(bool)
    board = np.where(odd[..., None], CHECKER_COLOURS[1], CHECKER_COLOURS[0])
    return Image.fromarray(board.astype(np.uint8), mode="RGB").convert("RGBA")


def over_checkerboard(rgba: Image.Image, tile: int) -> Image.Image:
    board = checkerboard(rgba.size, max(4, tile // 12))
    return Image.alpha_composite(board, rgba.convert("RGBA")).convert("RGB")


def wrap_text(text: str, font, width: int, max_lines: int) -> List[str]:
    """Greedy word wrap to `width` pixels in `font`; a word wider than a line is cut, and text beyond `max_lines`
    ends the last line with '...'."""
    lines: List[str] = []
    for word in text.split():
        if lines and font.getlength(f"{lines[-1]} {word}") <= width:
            lines[-1] = f"{lines[-1]} {word}"
            continue
        while font.getlength(word) > width and len(word) > 1:
            cut = len(word) - 1
            while cut > 1 and font.getlength(word[:cut]) > width:
                cut -= 1
            lines.append(word[:cut])
            word = word[cut:]
        lines.append(word)
    if len(lines) > max_lines:
        last = lines[max_lines - 1]
        while last and font.getlength(last + "...") > width:
            last = last[:-1]
        lines = lines[: max_lines - 1] + [last.rstrip() + "..."]
    return lines


def _caption(draw, origin, tile, font, label, text) -> None:
    x, y = origin
    y += tile + 4
    step = line_height(tile)
    draw.text((x + 2, y), label, fill=LABEL_COLOUR, font=font)
    for line in wrap_text(text, font, tile - 4, CAPTION_LINES - 1):
        y += step
        draw.text((x + 2, y), line, fill=TEXT_COLOUR, font=font)


def _paste_centred(sheet: Image.Image, picture: Image.Image, origin, tile) -> None:
    x, y = origin
    sheet.paste(
        picture,
        (x + (tile - picture.width) // 2, y + (tile - picture.height) // 2),
    )


def _as_tensor(image) -> torch.Tensor:
    """A path, PIL image, array or tensor -> `(1, 3, H, W)` float tensor in [0, 1]."""
    if isinstance(image, (str, Path)):
        return read_image(Path(image))
    return load_image(image)[:1]


def render_gallery(pipe, entries: Sequence[dict], tile: int = TILE, seed: int = 0) -> Image.Image:
    """Draw the gallery of `entries`: dicts with "image" (a path, PIL image, array or tensor), "prompts" and,
    optionally, "kinds" (one per prompt) and "name" (the image's caption; default: the file name). One pipeline
    call per image, with all its prompts; `seed` seeds torch and the generator passed to the pipeline (whose
    prediction has no randomness: the picture is the same for every seed)."""
    if not entries:
        raise ValueError("`entries` is empty; give at least one image.")
    torch.manual_seed(seed)
    font = ImageFont.load_default(size=font_size(tile))
    sheet = Image.new("RGB", sheet_size([len(e["prompts"]) for e in entries], tile), BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    for row, entry in enumerate(entries):
        image = _as_tensor(entry["image"])
        prompts = list(entry["prompts"])
        kinds = list(entry.get("kinds") or [None] * len(prompts))
        name = entry.get("name")
        if name is None:
            name = Path(entry["image"]).name if isinstance(entry["image"], (str, Path)) else f"image {row + 1}"
        alphas = pipe(
            image,
            prompts,
            output_type="pt",
            generator=torch.Generator("cpu").manual_seed(seed),
        ).alpha
        origin = tile_origin(row, 0, tile)
        picture = Image.fromarray((image[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8))
        _paste_centred(sheet, fit_to_tile(picture, tile), origin, tile)
        height, width = image.shape[-2:]
        _caption(draw, origin, tile, font, f"image, {width}x{height}", name)
        for k, (prompt, kind, alpha) in enumerate(zip(prompts, kinds, alphas)):
            alpha = alpha.reshape(1, 1, *alpha.shape[-2:]).float().cpu()
            suffix = f" - {kind}" if kind else ""
            origin = tile_origin(row, 2 * k + 1, tile)
            _paste_centred(
                sheet,
                fit_to_tile(alpha_to_pil(alpha), tile).convert("RGB"),
                origin,
                tile,
            )
            _caption(draw, origin, tile, font, f"alpha{suffix}", f'"{prompt}"')
            origin = tile_origin(row, 2 * k + 2, tile)
            rgba = fit_to_tile(cutout(image, alpha), tile)
            _paste_centred(sheet, over_checkerboard(rgba, tile), origin, tile)
            _caption(draw, origin, tile, font, f"cut-out{suffix}", f'"{prompt}"')
        if row + 1 < len(entries):
            y = tile_origin(row, 0, tile)[1] + row_height(tile) + ROW_GAP // 2
            draw.line([(MARGIN, y), (sheet.width - MARGIN, y)], fill=(200, 200, 200))
    return sheet


# Spec and command line -------------------------------------------------------------------------------------------


def load_spec(path: Path) -> List[dict]:
    """Read and check a gallery spec; image paths are resolved against the JSON file's folder."""
    try:
        spec = json.loads(Path(path).read_text())
    except OSError as error:
        raise UsageError(f"cannot read --spec {str(path)!r}: {error.strerror}") from None
    except json.JSONDecodeError as error:
        raise UsageError(f"--spec {str(path)!r} is not valid JSON: {error}") from None
    if not isinstance(spec, list) or not spec:
        raise UsageError(f"--spec {str(path)!r} must be a non-empty JSON list")
    entries = []
    for i, item in enumerate(spec):
        where = f"--spec {str(path)!r}, entry {i}"
        if not isinstance(item, dict) or not isinstance(item.get("image"), str):
            raise UsageError(f'{where}: expected an object with an "image" path')
        prompts, kinds = item.get("prompts"), item.get("kinds", [])
        if not isinstance(prompts, list) or not prompts or not all(isinstance(p, str) and p.strip() for p in prompts):
            raise UsageError(f'{where}: "prompts" must be a list of non-empty strings')
        if not isinstance(kinds, list) or len(kinds) != len(prompts):
            raise UsageError(f'{where}: "kinds" must name one kind per prompt ({len(prompts)})')
        image = Path(path).parent / item["image"]
        if not image.is_file():
            raise UsageError(f"{where}: no such image {str(image)!r}")
        entries.append(
            {
                "image": image,
                "name": item["image"],
                "prompts": [p.strip() for p in prompts],
                "kinds": [str(k) for k in kinds],
            }
        )
    return entries


def main(argv: Optional[Sequence[str]] = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--model",
        default=None,
        help="pipeline folder or Hub id (default: the demonstration checkpoint)",
    )
    parser.add_argument("--spec", default="examples/gallery.json")
    parser.add_argument("--output", default="examples/gallery.png")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --output")
    parser.add_argument("--tile", type=int, default=TILE, help="tile edge in pixels")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu", help="torch device (default: cpu)")
    args = parser.parse_args(argv)

    def fail(message: str):
        parser.exit(EXIT_USAGE, f"{parser.prog}: error: {message}\n")

    output = Path(args.output)
    if output.exists() and not args.overwrite:
        fail(f"--output {str(output)!r} already exists; pass --overwrite to replace it")
    if args.tile < 16:
        fail(f"--tile must be at least 16, got {args.tile}")
    try:
        entries = load_spec(Path(args.spec))
        for entry in entries:  # refuse unreadable images before any model work
            read_image(entry["image"])
        pipe = load_pipeline(args.model, *resolve_device_and_dtype(args.device, "float32"))
        sheet = render_gallery(pipe, entries, args.tile, args.seed)
    except UsageError as error:
        fail(str(error))
    output.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(output, optimize=True)
    print(f"wrote {output} ({sheet.width}x{sheet.height})")
    return output


if __name__ == "__main__":
    main()
