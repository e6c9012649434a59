# Copyright 2026 The diffusers-matte authors. Licensed under the Apache License, Version 2.0.
"""The web demo in a real browser: headless Chromium (Debian's package, installed by .ci/run) driven by Playwright.

A person's session on the tiny test pipeline: upload an image, type two prompts, press "Matte", wait, download the
alpha and check it is the pipeline's direct output; a too-large upload is refused with a message in the page.
Skipped only where no Chromium is installed.
"""

import sys
from pathlib import Path

import numpy as np
import PIL.Image
import pytest

from diffusers_matte.pipelines import SoftGroundingMattingPipeline
from diffusers_matte.pipelines.soft_grounding.image_processor import load_image
from diffusers_matte.testing import get_dummy_components

pytest.importorskip("gradio", reason='the demo needs Gradio: pip install "diffusers-matte[demo]"')
pytest.importorskip("playwright", reason='the browser test needs Playwright: pip install "diffusers-matte[dev]"')

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))

import make_demo_screenshot as browser  # noqa: E402

from diffusers_matte.demo import create_demo  # noqa: E402

CHROMIUM = browser.chromium_executable()
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="no Chromium at /usr/bin/chromium (apt-get install -y chromium; .ci/run does)"
)
PROMPTS = ["the cat on the left", "a glass of water"]
MAX_MEGAPIXELS = 0.01  # the 40x56 test image passes, a 200x100 one is refused


@pytest.fixture(scope="module")
def pipe():
    pipe = SoftGroundingMattingPipeline(**get_dummy_components(), default_processing_resolution=32)
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.fixture(scope="module")
def url(pipe):
    with browser.served(create_demo(pipe, examples=None, max_megapixels=MAX_MEGAPIXELS)) as url:
        yield url


@pytest.fixture
def page():
    with browser.browser_page(CHROMIUM) as page:
        yield page


def test_alpha_downloaded_from_the_browser_is_the_pipelines_output(pipe, url, page, tmp_path):
    image_path = tmp_path / "cat.png"
    rng = np.random.default_rng(0)
    PIL.Image.fromarray(rng.integers(0, 256, (40, 56, 3), dtype=np.uint8)).save(image_path)

    browser.upload_and_type(page, url, image_path, PROMPTS)
    assert page.locator("#prompts textarea").input_value() == "\n".join(PROMPTS)
    names = browser.submit_and_wait(page)
    assert names == [
        "cat_the-cat-on-the-left_alpha.png",
        "cat_the-cat-on-the-left_cutout.png",
        "cat_a-glass-of-water_alpha.png",
        "cat_a-glass-of-water_cutout.png",
    ]
    for gallery in ("alpha", "cutout", "coarse", "transparency"):
        assert page.locator(f"#{gallery} img").count() == len(PROMPTS), gallery
    page.screenshot(path=tmp_path / "demo.png", full_page=True)  # for a person to look at

    direct = pipe(load_image(PIL.Image.open(image_path)), PROMPTS, output_type="pil")
    for k in range(len(PROMPTS)):
        alpha = PIL.Image.open(browser.download(page, names[2 * k], tmp_path))
        assert alpha.mode == "L" and alpha.size == (56, 40)
        assert np.array_equal(np.asarray(alpha), np.asarray(direct.alpha[k]))
    cutout = PIL.Image.open(browser.download(page, names[1], tmp_path))
    assert cutout.mode == "RGBA" and np.array_equal(np.asarray(cutout)[..., 3], np.asarray(direct.alpha[0]))


def test_too_large_upload_is_refused_with_a_message(url, page, tmp_path):
    image_path = tmp_path / "wide.png"
    PIL.Image.new("RGB", (200, 100), (200, 30, 30)).save(image_path)
    browser.upload_and_type(page, url, image_path, PROMPTS[:1])
    page.locator("#prompts textarea").press("Shift+Enter")  # the other way to run
    message = page.get_by_text("above this demo's limit of 0.01 megapixels")
    message.first.wait_for(timeout=60_000)
    assert "wide.png is 200x100 (0.02 megapixels)" in message.first.inner_text()
    assert page.locator("#files a[download]").count() == 0
