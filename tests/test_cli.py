# Copyright 2026 The diffusers-matte authors. Licensed under the Apache License, Version 2.0.
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import PIL.Image
import PIL.ImageOps
import pytest

import diffusers_matte
from diffusers_matte import cli
from diffusers_matte.pipelines import SoftGroundingMattingPipeline
from diffusers_matte.pipelines.soft_grounding.image_processor import load_image


@pytest.fixture
def images(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    rng = np.random.default_rng(0)
    PIL.Image.fromarray(rng.integers(0, 256, (30, 44, 3), dtype=np.uint8)).save(folder / "cat.png")
    PIL.Image.fromarray(rng.integers(0, 256, (26, 20), dtype=np.uint8)).save(folder / "dog.jpg")
    (folder / "notes.txt").write_text("not an image")
    return folder


def _assert_one_line_error(code, err, fragment):
    assert code == 2
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert fragment in lines[0], lines[0]


def test_predict_writes_alpha_pngs_for_every_image_and_prompt(run_cli, images, tiny_model_dir, tmp_path):
    out = tmp_path / "out"
    args = [
        "predict",
        images,
        "--prompt",
        "the cat",
        "--prompt",
        "a dog",
        "--model",
        tiny_model_dir,
    ]
    code, err = run_cli(*args, "--output-dir", out, "--processing-resolution", 24)
    assert code == 0, err
    names = sorted(p.name for p in out.glob("*.png"))
    assert names == [
        "cat_a-dog_alpha.png",
        "cat_the-cat_alpha.png",
        "dog_a-dog_alpha.png",
        "dog_the-cat_alpha.png",
    ]
    written = PIL.Image.open(out / "cat_the-cat_alpha.png")
    assert written.mode == "L" and written.size == (44, 30)
    # The same numbers as the pipeline called directly.
    pipe = SoftGroundingMattingPipeline.from_pretrained(tiny_model_dir)
    pipe.set_progress_bar_config(disable=True)
    image = load_image(PIL.Image.open(images / "cat.png"))
    expected = pipe(image, "the cat", processing_resolution=24).alpha[0, ..., 0]
    np.testing.assert_allclose(np.asarray(written) / 255.0, expected, atol=1 / 255 + 1e-6)
    assert "matting" in err  # the progress bar


def test_predict_globs_and_cutouts(run_cli, images, tiny_model_dir, tmp_path):
    out = tmp_path / "out"
    args = [
        "predict",
        images / "*.png",
        "--prompt",
        "the cat",
        "--model",
        tiny_model_dir,
        "--output-dir",
        out,
    ]
    code, err = run_cli(*args, "--cutout")
    assert code == 0, err
    assert [p.name for p in out.glob("*.png")] == ["cat_the-cat_cutout.png"]
    cutout = PIL.Image.open(out / "cat_the-cat_cutout.png")
    assert cutout.mode == "RGBA" and cutout.size == (44, 30)
    assert run_cli(*args)[0] == 0  # the alpha next to it: the cut-out carries the same matte
    alpha = np.asarray(PIL.Image.open(out / "cat_the-cat_alpha.png"))
    np.testing.assert_array_equal(np.asarray(cutout)[..., 3], alpha)


def test_refuses_to_overwrite_unless_asked(run_cli, images, tiny_model_dir, tmp_path):
    out = tmp_path / "out"
    args = [
        "predict",
        images / "cat.png",
        "--prompt",
        "the cat",
        "--model",
        tiny_model_dir,
        "--output-dir",
        out,
    ]
    assert run_cli(*args)[0] == 0
    target = out / "cat_the-cat_alpha.png"
    target.write_bytes(b"keep me")
    _assert_one_line_error(*run_cli(*args), "--overwrite")
    _assert_one_line_error(*run_cli(*args), "--skip-existing")
    assert target.read_bytes() == b"keep me"
    assert run_cli(*args, "--overwrite")[0] == 0
    assert PIL.Image.open(target).size == (44, 30)


BAD_INPUTS = {
    "missing file": (["{d}/missing.png", "--prompt", "a"], "no such file or folder"),
    "glob without match": (["{d}/*.xyz", "--prompt", "a"], "no image matches"),
    "folder without images": (["{d}/empty", "--prompt", "a"], "no image files"),
    "unreadable image": (["{d}/broken.png", "--prompt", "a"], "cannot read image"),
    "float image without colour meaning": (["{d}/float.tif", "--prompt", "a"], "mode 'F'"),
    "image above --max-megapixels": (
        ["{d}/cat.png", "--prompt", "a", "--max-megapixels", "0.001"],
        "44x30 (0.0 megapixels), above the limit of 0.001 megapixels; pass a larger --max-megapixels",
    ),
    "non-positive --max-megapixels": (["{d}/cat.png", "--prompt", "a", "--max-megapixels", "0"], "positive"),
    "output folder is a file": (["{d}/cat.png", "--prompt", "a", "--output-dir", "{d}/cat.png"], "is a file"),
    "output folder under a file": (
        ["{d}/cat.png", "--prompt", "a", "--output-dir", "{d}/cat.png/out"],
        "cannot be created",
    ),
    "both --overwrite and --skip-existing": (
        ["{d}/cat.png", "--prompt", "a", "--overwrite", "--skip-existing"],
        "not allowed with",
    ),
    "output that is an input": (
        ["{d}/sub", "--prompt", "a", "--output-dir", "{d}/sub"],
        "is an input and would be an output",
    ),
    "no prompt": (["{d}/cat.png"], "required: --prompt"),
    "empty prompt": (["{d}/cat.png", "--prompt", " "], "must not be empty"),
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
def test_bad_input_exits_2_with_one_line(run_cli, images, tiny_model_dir, case):
    (images / "empty").mkdir()
    (images / "sub").mkdir()
    (images / "sub" / "cat.png").write_bytes((images / "cat.png").read_bytes())
    (images / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    PIL.Image.fromarray(np.full((4, 4), 300.0, np.float32)).save(images / "float.tif")
    (images / "sub" / "cat_a_alpha.png").write_bytes((images / "cat.png").read_bytes())
    argv, fragment = BAD_INPUTS[case]
    argv = [a.format(d=images) for a in argv]
    if "--model" not in argv:
        argv += ["--model", str(tiny_model_dir)]
    _assert_one_line_error(*run_cli("predict", *argv), fragment)


def _exif_rotated_jpeg(path, stored=(128, 200), orientation=6):
    """A JPEG stored `stored = (height, width)` with an EXIF Orientation tag, as phones write them."""
    rng = np.random.default_rng(1)
    image = PIL.Image.fromarray(rng.integers(0, 256, (*stored, 3), dtype=np.uint8))
    exif = image.getexif()
    exif[0x0112] = orientation
    image.save(path, exif=exif, quality=95)
    return path


def _predict(run_cli, inputs, out, model_dir, *extra, prompts=("the cat",)):
    prompt_args = [a for p in prompts for a in ("--prompt", p)]
    return run_cli("predict", *inputs, *prompt_args, "--model", model_dir, "--output-dir", out, *extra)


def test_exif_orientation_is_applied(run_cli, tiny_model_dir, tmp_path):
    photo = _exif_rotated_jpeg(tmp_path / "phone.jpg")  # stored 200 wide x 128 high, displayed 128 x 200
    code, err = _predict(run_cli, [photo], tmp_path / "out", tiny_model_dir)
    assert code == 0, err
    alpha = PIL.Image.open(tmp_path / "out" / "phone_the-cat_alpha.png")
    assert alpha.size == (128, 200)  # lines up with the photo as it is shown
    upright = PIL.ImageOps.exif_transpose(PIL.Image.open(photo))
    torch_image = cli.read_image(photo)
    np.testing.assert_allclose(torch_image[0].permute(1, 2, 0).numpy() * 255, np.asarray(upright), atol=0.5)


def test_cmyk_bilevel_and_gif_files_are_read_in_folders_and_alone(run_cli, tiny_model_dir, tmp_path):
    folder = tmp_path / "mixed"
    folder.mkdir()
    PIL.Image.new("CMYK", (20, 12), (0, 255, 255, 0)).save(folder / "print.jpg")
    PIL.Image.new("1", (16, 16), 1).save(folder / "scan.png")
    PIL.Image.new("P", (10, 14)).save(folder / "anim.gif")
    code, err = _predict(run_cli, [folder], tmp_path / "out", tiny_model_dir)
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "out").glob("*.png")) == [
        "anim_the-cat_alpha.png",
        "print_the-cat_alpha.png",
        "scan_the-cat_alpha.png",
    ]
    red = cli.read_image(folder / "print.jpg")[0, :, 6, 10]  # CMYK (0, 255, 255, 0) is red, not refused
    assert red[0] > 0.9 and red[1] < 0.1 and red[2] < 0.1
    assert _predict(run_cli, [folder / "anim.gif"], tmp_path / "one", tiny_model_dir)[0] == 0


def test_a_decompression_bomb_gets_one_line_before_decoding(run_cli, tiny_model_dir, tmp_path, recwarn):
    PIL.Image.new("P", (10000, 10000)).save(tmp_path / "bomb.png")  # 12 KB, 100 megapixels
    code, err = _predict(run_cli, [tmp_path / "bomb.png"], tmp_path / "out", tiny_model_dir)
    _assert_one_line_error(code, err, "10000x10000 (100.0 megapixels), above the limit of 50 megapixels")
    assert not [w for w in recwarn if issubclass(w.category, PIL.Image.DecompressionBombWarning)]
    assert not (tmp_path / "out").exists()
    from diffusers_matte.pipelines.soft_grounding import image_processor

    assert cli.DEFAULT_MAX_MEGAPIXELS == image_processor.DEFAULT_MAX_MEGAPIXELS  # the parser's copy agrees


def test_output_folder_problems_are_found_before_the_model_loads(run_cli, images, tmp_path, monkeypatch):
    def no_loading(*args, **kwargs):
        raise AssertionError("the model was loaded")

    monkeypatch.setattr(cli.predict, "load_pipeline", no_loading)
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    for out, fragment in ((blocker, "is a file, not a folder"), (blocker / "sub", "cannot be created")):
        code, err = run_cli("predict", images / "cat.png", "--prompt", "a", "--output-dir", out)
        _assert_one_line_error(code, err, fragment)


def test_symlinks_in_the_output_folder_are_never_followed(run_cli, images, tiny_model_dir, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    outside = tmp_path / "outside.png"
    link = out / "cat_the-cat_alpha.png"
    link.symlink_to(outside)  # dangling: today's code would create outside.png
    for extra in ((), ("--overwrite",), ("--skip-existing",)):
        code, err = _predict(run_cli, [images / "cat.png"], out, tiny_model_dir, *extra)
        _assert_one_line_error(code, err, "symbolic link")
        assert not outside.exists() and link.is_symlink()
    outside.write_bytes(b"someone else's file")
    code, err = _predict(run_cli, [images / "cat.png"], out, tiny_model_dir, "--overwrite")
    _assert_one_line_error(code, err, "symbolic link")
    assert outside.read_bytes() == b"someone else's file"


def test_written_files_replace_atomically(run_cli, images, tiny_model_dir, tmp_path, monkeypatch):
    out = tmp_path / "out"
    assert _predict(run_cli, [images / "cat.png"], out, tiny_model_dir)[0] == 0
    target = out / "cat_the-cat_alpha.png"
    before = target.read_bytes()

    def broken_save(self, fp, format=None, **params):
        fp.write(b"half a PNG")
        raise OSError("disk full")

    monkeypatch.setattr(PIL.Image.Image, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        cli.main(["predict", str(images / "cat.png"), "--prompt", "the cat", "--model", str(tiny_model_dir),
                  "--output-dir", str(out), "--overwrite"])  # fmt: skip
    assert target.read_bytes() == before  # the old file is whole, and no partial file stays
    assert sorted(p.name for p in out.iterdir()) == ["cat_the-cat_alpha.png", "diffusers-matte-outputs.json"]


def test_skip_existing_continues_an_interrupted_batch(run_cli, images, tiny_model_dir, tmp_path, monkeypatch):
    out = tmp_path / "out"
    prompts = ("the cat", "a dog")
    assert _predict(run_cli, [images / "cat.png"], out, tiny_model_dir, prompts=prompts)[0] == 0
    kept = out / "cat_the-cat_alpha.png"
    kept.write_bytes(b"kept")
    (out / "cat_a-dog_alpha.png").unlink()
    calls = []
    original = SoftGroundingMattingPipeline.__call__

    def counting_call(self, image, prompt, **kwargs):
        calls.append(list(prompt))
        return original(self, image, prompt, **kwargs)

    monkeypatch.setattr(SoftGroundingMattingPipeline, "__call__", counting_call)
    code, err = _predict(run_cli, [images], out, tiny_model_dir, "--skip-existing", prompts=prompts)
    assert code == 0, err
    assert calls == [["a dog"], ["the cat", "a dog"]]  # only what is missing: one prompt of cat, all of dog
    assert kept.read_bytes() == b"kept"
    assert len(list(out.glob("*.png"))) == 4 and "kept 1 existing" in err
    calls.clear()
    code, err = _predict(run_cli, [images], out, tiny_model_dir, "--skip-existing", prompts=prompts)
    assert code == 0 and calls == [] and "nothing to do" in err


def test_outputs_in_the_input_folder_are_not_read_back(run_cli, images, tiny_model_dir):
    args = [images, "--prompt", "the cat", "--model", tiny_model_dir, "--output-dir", images]
    assert run_cli("predict", *args)[0] == 0
    code, err = run_cli("predict", *args, "--skip-existing")
    assert code == 0, err
    assert "nothing to do" in err
    assert sorted(p.name for p in images.glob("*_alpha.png")) == ["cat_the-cat_alpha.png", "dog_the-cat_alpha.png"]
    assert [p.name for p in cli.expand_inputs([str(images)])] == ["cat.png", "dog.jpg"]


def test_any_prompts_get_unique_readable_file_names(run_cli, images, tiny_model_dir, tmp_path):
    shared = "the small brown dog sitting on the left of the sofa"  # longer than the 40-character names
    prompts = (f"{shared}, awake", f"{shared}, asleep", "一只猫", "一只狗", "la niña", "a dog", "A dog!")
    out = tmp_path / "out"
    code, err = _predict(run_cli, [images / "cat.png"], out, tiny_model_dir, prompts=prompts)
    assert code == 0, err
    manifest = json.loads((out / "diffusers-matte-outputs.json").read_text(encoding="utf-8"))
    names = manifest["prompts"]
    assert sorted(names) == sorted(prompts) and len(set(names.values())) == len(prompts)
    assert names["一只猫"] == "一只猫" and names["la niña"] == "la-niña" and names["a dog"] == "a-dog"
    assert re.fullmatch(r"a-dog-[0-9a-f]{8}", names["A dog!"])
    assert all(re.fullmatch(r"the-small-brown-dog-sitting-on-the-left-[0-9a-f]{8}", names[p]) for p in prompts[:2])
    for prompt, name in names.items():
        file = out / f"cat_{name}_alpha.png"
        assert file.is_file() and manifest["outputs"][file.name]["prompt"] == prompt
    assert "file names:" in err and "A dog!" in err
    # a second run keeps the names the folder gave, whatever other prompts come with them
    code, err = _predict(run_cli, [images / "cat.png"], out, tiny_model_dir, "--skip-existing", prompts=("A dog!",))
    assert code == 0 and "nothing to do" in err


def test_help_is_fast_and_version_works():
    command = [sys.executable, "-m", "diffusers_matte.cli"]
    result = subprocess.run([*command, "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and "predict" in result.stdout
    # What makes --help fast (about 0.6 s here, against 8.6 s before): building the parser imports neither torch
    # nor diffusers. Checked by what is imported, not by a timing that a loaded machine would make flaky.
    probe = "import sys, diffusers_matte.cli as c; c.build_parser(); print(sorted({'torch', 'diffusers'} & set(sys.modules)))"
    assert subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True).stdout.strip() == "[]"
    version = subprocess.run([*command, "--version"], capture_output=True, text=True)
    assert version.returncode == 0 and version.stdout.strip() == f"diffusers-matte {diffusers_matte.__version__}"


def test_unknown_subcommand(run_cli):
    _assert_one_line_error(*run_cli("transmogrify"), "invalid choice")


def test_default_model_is_the_shipped_demo_checkpoint(run_cli, images, tiny_model_dir, tmp_path, monkeypatch):
    args = [
        "predict",
        images / "cat.png",
        "--prompt",
        "the cat",
        "--output-dir",
        tmp_path / "out",
    ]
    monkeypatch.setattr(cli.common, "DEMO_MODEL_DIR", tmp_path / "no_demo_here")
    _assert_one_line_error(*run_cli(*args), "no demonstration checkpoint")
    monkeypatch.setattr(cli.common, "DEMO_MODEL_DIR", Path(tiny_model_dir))
    code, err = run_cli(*args)
    assert code == 0, err
    assert [line for line in err.splitlines() if "demonstration model" in line] == [
        "diffusers-matte: using the built-in demonstration model (small, trained on synthetic scenes only); pass "
        "--model for a real checkpoint"
    ]
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


def test_evaluate_subcommand_scores_a_baseline(run_cli, tmp_path):
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
    code, err = run_cli(*args)
    assert code == 0, err
    assert (tmp_path / "eval" / "metrics.json").is_file()
    assert (tmp_path / "eval" / "results.md").is_file()
    _assert_one_line_error(*run_cli("evaluate", "--protocol", "synthetic"), "--output-dir")


def test_readme_main_command_runs_with_the_shipped_demo_model(run_cli, tmp_path):
    """The README's main command, on the shipped example image, with the shipped demonstration model."""
    repo = Path(__file__).resolve().parents[1]
    readme = (repo / "README.md").read_text()
    command = next(line for line in readme.splitlines() if line.startswith("diffusers-matte predict"))
    args = command.split()[2:]
    args[0] = str(repo / args[0])
    prompt = command.split('"')[1]
    args = [args[0], "--prompt", prompt, "--output-dir", str(tmp_path)]
    code, err = run_cli("predict", *args)
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


def test_readme_describes_the_output_and_model_options():
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    predict_help = subprocess.run(
        [sys.executable, "-m", "diffusers_matte.cli", "predict", "--help"], capture_output=True, text=True
    ).stdout
    for flag in ("--skip-existing", "--overwrite", "--trust-remote-code", "--allow-pickle", "--max-megapixels"):
        assert f"`{flag}`" in readme and flag in predict_help, flag
    for words in ("symbolic link", "diffusers-matte-outputs.json", "--overwrite_output_dir", "peft"):
        assert words in readme, words


def test_fast_mode_of_the_shipped_demo_model_gives_nearly_the_same_matte(run_cli, tmp_path):
    """The demonstration model ships a distilled tiny encoder in `vae_tiny/`: `--fast` runs it."""
    repo = Path(__file__).resolve().parents[1]
    image = repo / "examples" / "images" / "triangle_box_star.png"
    alphas = {}
    for mode in ("default", "fast"):
        extra = ["--fast"] if mode == "fast" else []
        code, err = run_cli("predict", image, "--prompt", "the orange box", "--output-dir", tmp_path / mode, *extra)
        assert code == 0, err
        (written,) = (tmp_path / mode).glob("*_alpha.png")
        alphas[mode] = np.asarray(PIL.Image.open(written)) / 255.0
    assert not np.array_equal(alphas["default"], alphas["fast"])  # another encoder ran
    assert np.abs(alphas["default"] - alphas["fast"]).mean() < 0.02
