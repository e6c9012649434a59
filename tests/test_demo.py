# Copyright 2026 The diffusers-matte authors. Licensed under the Apache License, Version 2.0.
"""The web demo without a browser: input checks, that its outputs are the pipeline's own, its files, the app and
the `diffusers-matte demo` command (tests/test_demo_browser.py drives it in Chromium)."""

import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
import PIL.Image
import pytest

from diffusers_matte import cli
from diffusers_matte import demo as demo_lib
from diffusers_matte.pipelines.soft_grounding.image_processor import load_image

gr = pytest.importorskip("gradio", reason='the demo needs Gradio: pip install "diffusers-matte[demo]"')
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

PROMPTS = "the cat on the left\na glass of water"


@pytest.fixture
def image_file(tmp_path):
    path = tmp_path / "cat.png"
    rng = np.random.default_rng(0)
    PIL.Image.fromarray(rng.integers(0, 256, (40, 56, 3), dtype=np.uint8)).save(path)
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# Input checks ----------------------------------------------------------------------------------------------------


def test_read_upload_returns_the_image_as_the_pipeline_takes_it(image_file):
    image = demo_lib.read_upload(image_file)
    expected = load_image(PIL.Image.open(image_file))
    assert image.shape == (1, 3, 40, 56)
    assert np.array_equal(image.numpy(), expected.numpy())


def test_read_upload_refuses_an_image_above_the_megapixel_limit(tmp_path):
    path = tmp_path / "big.png"
    PIL.Image.new("RGB", (1000, 600)).save(path)
    with pytest.raises(demo_lib.DemoInputError, match=r"big.png is 1000x600 \(0.6 megapixels\), above .* 0.5 mega"):
        demo_lib.read_upload(path, max_megapixels=0.5)
    assert demo_lib.read_upload(path, max_megapixels=0.6).shape == (1, 3, 600, 1000)


@pytest.mark.parametrize(
    "name, write, message",
    [
        ("notes.txt", lambda p: p.write_text("not an image"), "notes.txt cannot be read as an image"),
        ("icon.ico", lambda p: PIL.Image.new("RGB", (16, 16)).save(p), "ICO files are not supported; upload a PNG"),
        ("truncated.png", lambda p: p.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 20), "cannot be read"),
    ],
)
def test_read_upload_refuses_unsupported_or_unreadable_files(tmp_path, name, write, message):
    path = tmp_path / name
    write(path)
    with pytest.raises(demo_lib.DemoInputError, match=message):
        demo_lib.read_upload(path)


def test_read_upload_reads_as_the_command_line_does(tmp_path):
    path = tmp_path / "sideways.jpg"
    exif = PIL.Image.Exif()
    exif[0x0112] = 6  # stored sideways: shown rotated by 90 degrees
    PIL.Image.new("RGB", (30, 20), (200, 100, 50)).save(path, exif=exif)
    assert demo_lib.read_upload(path).shape == (1, 3, 30, 20)
    gif = tmp_path / "first_frame.gif"
    PIL.Image.new("P", (8, 6)).save(gif)
    assert demo_lib.read_upload(gif).shape == (1, 3, 6, 8)


def test_read_upload_asks_for_an_image_when_there_is_none():
    with pytest.raises(demo_lib.DemoInputError, match="Upload an image first"):
        demo_lib.read_upload(None)


def test_parse_prompts_takes_one_prompt_per_line():
    assert demo_lib.parse_prompts("  the dog \n\nthe glass\nthe dog\n") == ["the dog", "the glass"]
    with pytest.raises(demo_lib.DemoInputError, match="one prompt per line"):
        demo_lib.parse_prompts(" \n ")
    with pytest.raises(demo_lib.DemoInputError, match="3 prompts given; this demo takes at most 2"):
        demo_lib.parse_prompts("a\nb\nc", max_prompts=2)


# Outputs ---------------------------------------------------------------------------------------------------------


def test_matter_gives_the_pipelines_outputs_for_every_prompt(tiny_pipe, image_file):
    results = demo_lib.DemoMatter(tiny_pipe).matte(str(image_file), PROMPTS)
    image = load_image(PIL.Image.open(image_file))
    direct = tiny_pipe(image, PROMPTS.splitlines(), output_type="pil")
    assert [r.prompt for r in results] == PROMPTS.splitlines()
    for k, result in enumerate(results):
        for field in ("alpha", "coarse_alpha", "transparency"):
            assert np.array_equal(np.asarray(getattr(result, field)), np.asarray(getattr(direct, field)[k])), field
        assert result.cutout.mode == "RGBA" and result.cutout.size == (56, 40)
        assert np.array_equal(np.asarray(result.cutout)[..., 3], np.asarray(direct.alpha[k]))
        assert result.preview.mode == "RGB" and result.preview.size == (56, 40)


def test_over_checkerboard_shows_the_board_through_transparent_pixels():
    rgba = np.zeros((16, 16, 4), np.uint8)
    rgba[:, 8:] = (255, 0, 0, 255)  # right half opaque red, left half transparent
    shown = np.asarray(demo_lib.over_checkerboard(PIL.Image.fromarray(rgba, "RGBA"), square=4))
    assert shown[0, 0].tolist() == [255, 255, 255] and shown[0, 4].tolist() == [204, 204, 204]
    assert (shown[:, 8:] == (255, 0, 0)).all()


def test_handler_fills_the_galleries_and_writes_named_pngs(tiny_pipe, image_file, tmp_path):
    matter = demo_lib.DemoMatter(tiny_pipe, output_dir=tmp_path / "out")
    alpha, preview, coarse, transparency, files = matter(str(image_file), PROMPTS)
    for gallery in (alpha, preview, coarse, transparency):
        assert [caption for _, caption in gallery] == PROMPTS.splitlines()
    assert [Path(f).name for f in files] == [
        "cat_the-cat-on-the-left_alpha.png",
        "cat_the-cat-on-the-left_cutout.png",
        "cat_a-glass-of-water_alpha.png",
        "cat_a-glass-of-water_cutout.png",
    ]
    assert np.array_equal(np.asarray(PIL.Image.open(files[0])), np.asarray(alpha[0][0]))
    assert PIL.Image.open(files[1]).mode == "RGBA"


def test_handler_shows_refused_inputs_as_messages(tiny_pipe, image_file, tmp_path):
    matter = demo_lib.DemoMatter(tiny_pipe, max_megapixels=0.001, output_dir=tmp_path)
    with pytest.raises(gr.Error, match="above this demo's limit of 0.001 megapixels"):
        matter(str(image_file), PROMPTS)
    with pytest.raises(gr.Error, match="one prompt per line"):
        matter(str(image_file), "")


def test_only_the_last_requests_files_are_kept(tiny_pipe, image_file, tmp_path):
    matter = demo_lib.DemoMatter(tiny_pipe, output_dir=tmp_path / "out")
    results = matter.matte(str(image_file), "the cat")
    first = matter.save(results, "cat.png")
    for _ in range(demo_lib.KEPT_REQUESTS):
        last = matter.save(results, "cat.png")
    assert not first[0].exists() and last[0].exists()
    assert len(list((tmp_path / "out").iterdir())) == demo_lib.KEPT_REQUESTS


def test_prompts_that_share_a_file_name_get_distinct_files(tiny_pipe, image_file, tmp_path):
    matter = demo_lib.DemoMatter(tiny_pipe, output_dir=tmp_path)
    files = matter.save(matter.matte(str(image_file), "the cat!\nthe cat?"), "cat.png")
    assert len({f.name for f in files}) == 4


# The app ---------------------------------------------------------------------------------------------------------


def test_repository_examples_are_the_gallerys_images_and_prompts():
    rows = demo_lib.load_examples()
    spec = json.loads(demo_lib.EXAMPLES_FILE.read_text())
    assert len(rows) == len(spec) > 0
    for (image, prompts), entry in zip(rows, spec):
        assert Path(image).is_file() and prompts.splitlines() == entry["prompts"]
    assert demo_lib.load_examples(None) == [] and demo_lib.load_examples("missing.json") == []


def test_create_demo_queues_requests_one_at_a_time(tiny_pipe):
    app = demo_lib.create_demo(tiny_pipe, examples=None)
    assert isinstance(app, gr.Blocks)
    matting = [fn for fn in app.fns.values() if isinstance(fn.fn, demo_lib.DemoMatter)]
    # Two events (the button, Shift+Enter in the prompts), both on one queue slot.
    assert len(matting) == 2 and all(fn.concurrency_limit == 1 and fn.concurrency_id == "pipe" for fn in matting)


def test_requests_run_one_at_a_time_and_the_api_answers(tiny_pipe, image_file, monkeypatch):
    from gradio_client import Client, handle_file

    running, peak, lock = [0], [0], threading.Lock()
    matte = demo_lib.DemoMatter.matte

    def slow_matte(self, *args):
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        time.sleep(0.5)
        try:
            return matte(self, *args)
        finally:
            with lock:
                running[0] -= 1

    monkeypatch.setattr(demo_lib.DemoMatter, "matte", slow_matte)
    app = demo_lib.create_demo(tiny_pipe, examples=None)
    try:
        demo_lib.launch_demo(app, port=free_port(), prevent_thread_lock=True, quiet=True)
        client = Client(app.local_url, verbose=False)
        jobs = [client.submit(handle_file(str(image_file)), PROMPTS, api_name="/matte") for _ in range(3)]
        results = [job.result(timeout=120) for job in jobs]
    finally:
        app.close()
    assert peak[0] == 1
    alpha_gallery, files = results[0][0], results[0][-1]
    assert [item["caption"] for item in alpha_gallery] == PROMPTS.splitlines()
    assert [Path(f).name for f in files][0] == "cat_the-cat-on-the-left_alpha.png"


def test_launched_demo_listens_on_localhost_only(tiny_pipe):
    app = demo_lib.create_demo(tiny_pipe, examples=None)
    port = free_port()
    try:
        demo_lib.launch_demo(app, port=port, prevent_thread_lock=True, quiet=True)
        assert app.server_name == "127.0.0.1"
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/config", timeout=30) as response:
            config = json.load(response)
        assert config["title"] == demo_lib.TITLE
    finally:
        app.close()


# The command -----------------------------------------------------------------------------------------------------


def test_demo_help_does_not_import_gradio():
    code = (
        "import sys\nfrom diffusers_matte import cli\n"
        "try:\n    cli.main(['demo', '--help'])\nexcept SystemExit:\n    pass\n"
        "print('gradio imported:', 'gradio' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "--max-megapixels" in result.stdout
    assert result.stdout.strip().endswith("gradio imported: False")


def test_demo_command_loads_the_model_once_and_binds_localhost_by_default(monkeypatch, tiny_model_dir):
    calls = []
    monkeypatch.setattr(demo_lib, "launch_demo", lambda app, **kwargs: calls.append((app, kwargs)))
    assert cli.main(["demo", "--model", str(tiny_model_dir), "--no-examples", "--max-megapixels", "2"]) == 0
    ((app, kwargs),) = calls
    assert isinstance(app, gr.Blocks)
    assert kwargs["host"] == "127.0.0.1" and kwargs["port"] == 7860 and kwargs["share"] is False


def test_demo_command_notes_a_non_local_host(monkeypatch, tiny_model_dir, capsys):
    monkeypatch.setattr(demo_lib, "launch_demo", lambda app, **kwargs: None)
    assert cli.main(["demo", "--model", str(tiny_model_dir), "--host", "0.0.0.0", "--port", "8000"]) == 0
    assert "other machines can reach the demo" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["--port", "0"], "--port must be between 1 and 65535"),
        (["--max-megapixels", "-1"], "--max-megapixels must be positive"),
        (["--examples", "missing.json"], "no such examples file"),
        (["--model", "/no/such/model"], "cannot load the model"),
    ],
)
def test_demo_command_refuses_bad_options_in_one_line(capsys, argv, fragment):
    start = time.time()
    assert cli.main(["demo", *argv]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and fragment in err, err
    assert time.time() - start < 60


def test_app_py_builds_the_demo_from_the_environment(monkeypatch, tiny_model_dir):
    import runpy

    monkeypatch.setenv("DIFFUSERS_MATTE_MODEL", str(tiny_model_dir))
    monkeypatch.setenv("DIFFUSERS_MATTE_DEVICE", "cpu")
    namespace = runpy.run_path(str(Path(__file__).resolve().parents[1] / "examples" / "app.py"))
    assert isinstance(namespace["demo"], gr.Blocks)
