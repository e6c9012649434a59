# Copyright 2026 The diffusers-matte authors. Licensed under the Apache License, Version 2.0.
import subprocess
import sys
from pathlib import Path

import numpy as np
import PIL.Image
import pytest

from diffusers_matte import cli
from diffusers_matte.pipelines import SoftGroundingMattingPipeline
from diffusers_matte.pipelines.soft_grounding.image_processor import load_image
from diffusers_matte.testing import get_dummy_components


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("model")
    # A small default processing resolution keeps the tiny models fast at the command's defaults.
    components = get_dummy_components()
    SoftGroundingMattingPipeline(**components, default_processing_resolution=32).save_pretrained(path)
    return path


@pytest.fixture
def images(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    rng = np.random.default_rng(0)
    PIL.Image.fromarray(rng.integers(0, 256, (30, 44, 3), dtype=np.uint8)).save(folder / "cat.png")
    PIL.Image.fromarray(rng.integers(0, 256, (26, 20), dtype=np.uint8)).save(folder / "dog.jpg")
    (folder / "notes.txt").write_text("not an image")
    return folder


def _run(capsys, *argv):
    """Run the command in-process; argparse's own errors leave through SystemExit."""
    try:
        code = cli.main([str(a) for a in argv])
    except SystemExit as exit_:
        code = exit_.code
    return code, capsys.readouterr().err


def _assert_one_line_error(code, err, fragment):
    assert code == 2
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert fragment in lines[0], lines[0]


def test_predict_writes_alpha_pngs_for_every_image_and_prompt(capsys, images, model_dir, tmp_path):
    out = tmp_path / "out"
    args = [
        "predict",
        images,
        "--prompt",
        "the cat",
        "--prompt",
        "a dog",
        "--model",
        model_dir,
    ]
    code, err = _run(capsys, *args, "--output-dir", out, "--processing-resolution", 24)
    assert code == 0, err
    names = sorted(p.name for p in out.iterdir())
    assert names == [
        "cat_a-dog_alpha.png",
        "cat_the-cat_alpha.png",
        "dog_a-dog_alpha.png",
        "dog_the-cat_alpha.png",
    ]
    written = PIL.Image.open(out / "cat_the-cat_alpha.png")
    assert written.mode == "L" and written.size == (44, 30)
    # The same numbers as the pipeline called directly.
    pipe = SoftGroundingMattingPipeline.from_pretrained(model_dir)
    pipe.set_progress_bar_config(disable=True)
    image = load_image(PIL.Image.open(images / "cat.png"))
    expected = pipe(image, "the cat", processing_resolution=24).alpha[0, ..., 0]
    np.testing.assert_allclose(np.asarray(written) / 255.0, expected, atol=1 / 255 + 1e-6)
    assert "matting" in err  # the progress bar


def test_predict_globs_and_cutouts(capsys, images, model_dir, tmp_path):
    out = tmp_path / "out"
    args = [
        "predict",
        images / "*.png",
        "--prompt",
        "the cat",
        "--model",
        model_dir,
        "--output-dir",
        out,
    ]
    code, err = _run(capsys, *args, "--cutout")
    assert code == 0, err
    assert [p.name for p in out.iterdir()] == ["cat_the-cat_cutout.png"]
    cutout = PIL.Image.open(out / "cat_the-cat_cutout.png")
    assert cutout.mode == "RGBA" and cutout.size == (44, 30)
    assert _run(capsys, *args)[0] == 0  # the alpha next to it: the cut-out carries the same matte
    alpha = np.asarray(PIL.Image.open(out / "cat_the-cat_alpha.png"))
    np.testing.assert_array_equal(np.asarray(cutout)[..., 3], alpha)


def test_refuses_to_overwrite_unless_asked(capsys, images, model_dir, tmp_path):
    out = tmp_path / "out"
    args = [
        "predict",
        images / "cat.png",
        "--prompt",
        "the cat",
        "--model",
        model_dir,
        "--output-dir",
        out,
    ]
    assert _run(capsys, *args)[0] == 0
    target = out / "cat_the-cat_alpha.png"
    target.write_bytes(b"keep me")
    _assert_one_line_error(*_run(capsys, *args), "--overwrite")
    assert target.read_bytes() == b"keep me"
    assert _run(capsys, *args, "--overwrite")[0] == 0
    assert PIL.Image.open(target).size == (44, 30)


BAD_INPUTS = {
    "missing file": (["{d}/missing.png", "--prompt", "a"], "no such file or folder"),
    "glob without match": (["{d}/*.gif", "--prompt", "a"], "no image matches"),
    "folder without images": (["{d}/empty", "--prompt", "a"], "no image files"),
    "unreadable image": (["{d}/broken.png", "--prompt", "a"], "cannot read image"),
    "unsupported colour mode": (
        ["{d}/cmyk.jpg", "--prompt", "a"],
        "unsupported PIL mode 'CMYK'",
    ),
    "no prompt": (["{d}/cat.png"], "required: --prompt"),
    "empty prompt": (["{d}/cat.png", "--prompt", " "], "must not be empty"),
    "prompts with one file name": (
        ["{d}/cat.png", "--prompt", "a", "--prompt", "A!"],
        "same file name",
    ),
    "two inputs with one stem": (
        ["{d}/cat.png", "{d}/sub/cat.png", "--prompt", "a"],
        "write the same outputs",
    ),
    "model folder missing": (
        ["{d}/cat.png", "--prompt", "a", "--model", "{d}/nowhere"],
        "cannot load the model",
    ),
    "bad batch size": (
        ["{d}/cat.png", "--prompt", "a", "--batch-size", "0"],
        "--batch-size",
    ),
    "bad dtype": (
        ["{d}/cat.png", "--prompt", "a", "--dtype", "int8"],
        "invalid choice",
    ),
    "no input": ([], "required: INPUT"),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_exits_2_with_one_line(capsys, images, model_dir, case):
    (images / "empty").mkdir()
    (images / "sub").mkdir()
    (images / "sub" / "cat.png").write_bytes((images / "cat.png").read_bytes())
    (images / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    PIL.Image.new("CMYK", (8, 8)).save(images / "cmyk.jpg")
    argv, fragment = BAD_INPUTS[case]
    argv = [a.format(d=images) for a in argv]
    if "--model" not in argv:
        argv += ["--model", str(model_dir)]
    _assert_one_line_error(*_run(capsys, "predict", *argv), fragment)


def test_unknown_subcommand(capsys):
    _assert_one_line_error(*_run(capsys, "transmogrify"), "invalid choice")


def test_default_model_is_the_shipped_demo_checkpoint(capsys, images, model_dir, tmp_path, monkeypatch):
    args = [
        "predict",
        images / "cat.png",
        "--prompt",
        "the cat",
        "--output-dir",
        tmp_path / "out",
    ]
    monkeypatch.setattr(cli.common, "DEMO_MODEL_DIR", tmp_path / "no_demo_here")
    _assert_one_line_error(*_run(capsys, *args), "no demonstration checkpoint")
    monkeypatch.setattr(cli.common, "DEMO_MODEL_DIR", Path(model_dir))
    code, err = _run(capsys, *args)
    assert code == 0, err
    assert (tmp_path / "out" / "cat_the-cat_alpha.png").is_file()


def test_demo_checkpoint_location_is_inside_the_package():
    package = Path(cli.__file__).parents[1]
    assert cli.DEMO_MODEL_DIR == package / "assets" / "demo_model"


def test_a_subcommand_is_one_function(monkeypatch):
    calls = []

    def register(subparsers):
        parser = subparsers.add_parser("echo")
        parser.add_argument("word")
        parser.set_defaults(run=lambda args: calls.append(args.word) or 0)

    monkeypatch.setattr(cli, "_SUBCOMMANDS", [*cli._SUBCOMMANDS])
    cli.subcommand(register)
    assert cli.main(["echo", "hi"]) == 0 and calls == ["hi"]


def test_console_script_reports_bad_input_without_traceback(tmp_path):
    script = Path(sys.executable).with_name("diffusers-matte")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "diffusers_matte.cli"]
    missing = tmp_path / "missing.png"
    result = subprocess.run(
        [*command, "predict", str(missing), "--prompt", "a"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert result.stderr.strip() == f"diffusers-matte predict: error: no such file or folder: '{missing}'"


def test_evaluate_subcommand_scores_a_baseline(capsys, tmp_path):
    args = [
        "evaluate",
        "--baseline",
        "zeros",
        "--protocol",
        "synthetic",
        "--synthetic-num-test",
        "2",
    ]
    args += ["--synthetic-image-size", "64", "--output-dir", tmp_path / "eval"]
    code, err = _run(capsys, *args)
    assert code == 0, err
    assert (tmp_path / "eval" / "metrics.json").is_file()
    assert (tmp_path / "eval" / "results.md").is_file()
    _assert_one_line_error(*_run(capsys, "evaluate", "--protocol", "synthetic"), "--output-dir")


def test_readme_main_command_runs_with_the_shipped_demo_model(capsys, tmp_path):
    """The README's main command, on the shipped example image, with the shipped demonstration model."""
    repo = Path(__file__).resolve().parents[1]
    readme = (repo / "README.md").read_text()
    command = next(line for line in readme.splitlines() if line.startswith("diffusers-matte predict"))
    args = command.split()[2:]
    args[0] = str(repo / args[0])
    prompt = command.split('"')[1]
    args = [args[0], "--prompt", prompt, "--output-dir", str(tmp_path)]
    code, err = _run(capsys, "predict", *args)
    assert code == 0, err
    (written,) = tmp_path.glob("*_alpha.png")
    alpha = np.asarray(PIL.Image.open(written))
    assert alpha.shape == PIL.Image.open(repo / command.split()[2]).size[::-1]
    assert 0 < alpha.mean() < 255  # a matte, neither empty nor full
    # the shipped model grounds: the named object is far brighter than the image's other objects
    sys.path.insert(0, str(repo / "examples"))
    import make_example_images

    name = Path(command.split()[2]).stem
    instances = make_example_images.scene(name).instances
    words = prompt.split()
    (target,) = [i for i in instances if i.category in words and i.color in words]
    others = np.maximum.reduce([i.alpha for i in instances if i is not target])
    alpha = alpha / 255.0
    on_target = alpha[target.alpha > 0.5].mean()
    on_others = alpha[(others > 0.5) & (target.alpha < 0.05)].mean()
    assert on_target > 0.5 and on_target > 5 * on_others, (on_target, on_others)
