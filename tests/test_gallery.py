# Copyright 2026 The diffusers-matte authors. Licensed under the Apache License, Version 2.0.
"""examples/make_gallery.py: layout, that its alpha tiles are the pipeline's own output, and its command line."""

import json
import sys
from pathlib import Path

import numpy as np
import PIL.Image
import pytest

from diffusers_matte.pipelines import SoftGroundingMattingPipeline
from diffusers_matte.pipelines.soft_grounding.image_processor import alpha_to_pil
from diffusers_matte.testing import get_dummy_components

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
sys.path.insert(0, str(EXAMPLES))

import make_gallery  # noqa: E402

TILE = 48


@pytest.fixture(scope="module")
def pipe():
    # A small default processing resolution keeps the tiny models fast.
    pipe = SoftGroundingMattingPipeline(**get_dummy_components(), default_processing_resolution=32)
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.fixture(scope="module")
def entries():
    rng = np.random.default_rng(0)
    square = PIL.Image.fromarray(rng.integers(0, 256, (24, 24, 3), dtype=np.uint8))
    tall = PIL.Image.fromarray(rng.integers(0, 256, (28, 20, 3), dtype=np.uint8))
    return [
        {
            "image": square,
            "prompts": ["the cat on the left", "a glass of water"],
            "kinds": ["absolute position", "transparent object"],
        },
        {
            "image": tall,
            "prompts": ["the red ball", "the dog", "the box left of the ball"],
            "kinds": ["colour", "category", "relative position"],
        },
    ]


@pytest.fixture(scope="module")
def gallery(pipe, entries):
    return make_gallery.render_gallery(pipe, entries, TILE)


def test_size_follows_the_layout(gallery):
    g = make_gallery
    caption = 4 + g.CAPTION_LINES * g.line_height(TILE) + 2
    # image tile, then three (alpha, cut-out) pairs: the widest row sets the width
    width = 2 * g.MARGIN + TILE + 3 * (g.GROUP_GAP + 2 * TILE + g.INNER_GAP)
    height = 2 * g.MARGIN + 2 * (TILE + caption) + g.ROW_GAP
    assert gallery.size == (width, height)


def test_alpha_tile_is_the_pipelines_output(pipe, entries, gallery):
    entry = entries[1]  # 20x28: scaled by 48/28 with nearest neighbour, centred horizontally
    alpha = pipe(entry["image"], entry["prompts"][2], output_type="pt").alpha[0]
    expected = np.asarray(make_gallery.fit_to_tile(alpha_to_pil(alpha), TILE))
    assert expected.shape == (TILE, round(20 * TILE / 28))

    x, y = make_gallery.tile_origin(1, 2 * 2 + 1, TILE)  # row 1, prompt 2's alpha
    x += (TILE - expected.shape[1]) // 2
    shown = np.asarray(gallery)[y : y + TILE, x : x + expected.shape[1]]
    assert (shown == expected[..., None]).all()
    assert expected.std() > 0  # a real matte, not a constant the test would match by luck


def test_short_row_leaves_missing_tiles_blank_and_captions_tiles(gallery):
    x, y = make_gallery.tile_origin(0, 5, TILE)  # row 0 has no third prompt
    blank = np.asarray(gallery)[y : y + TILE, x : x + 2 * TILE]
    assert (blank == make_gallery.BACKGROUND).all()
    x, y = make_gallery.tile_origin(0, 1, TILE)
    caption = np.asarray(gallery)[y + TILE : y + TILE + 40, x : x + TILE]
    assert (caption.sum(-1) < 300).any()  # dark text under the alpha tile


def test_main_refuses_an_existing_output(tmp_path, capsys):
    output = tmp_path / "gallery.png"
    output.write_bytes(b"keep me")
    with pytest.raises(SystemExit) as exit_:
        make_gallery.main(["--output", str(output)])
    assert exit_.value.code == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and "--output" in err[0] and "--overwrite" in err[0], err
    assert output.read_bytes() == b"keep me"


def test_main_renders_a_spec_with_overwrite(pipe, tmp_path):
    model = tmp_path / "model"
    pipe.save_pretrained(model)
    PIL.Image.new("RGB", (16, 16), (200, 30, 30)).save(tmp_path / "red.png")
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps([{"image": "red.png", "prompts": ["the red box"], "kinds": ["colour"]}]))
    output = tmp_path / "gallery.png"
    output.write_bytes(b"old")
    argv = ["--model", model, "--spec", spec, "--output", output, "--tile", 32]
    make_gallery.main([str(a) for a in argv] + ["--overwrite"])
    assert PIL.Image.open(output).size == make_gallery.sheet_size([1], 32)
