# Copyright 2026 The diffusers-matte authors. Licensed under the Apache License, Version 2.0.
"""`--vae PATH` and `--fast`: the commands run the model with another VAE (the fast mode's `AutoencoderTiny`) in
place of its own, loaded as the training stages load `--vae_model_name_or_path`."""

import json
import shutil

import numpy as np
import PIL.Image
import pytest
import torch
from diffusers import AutoencoderTiny
from test_cli_loading_options import (  # noqa: F401 (command_argv, image_file and video_file are fixtures)
    MODEL_COMMANDS,
    StopAfterLoading,
    capture_load_pipeline,
    command_argv,
    image_file,
    video_file,
)

from diffusers_matte import SoftGroundingMattingPipeline
from diffusers_matte.cli.common import read_image
from diffusers_matte.pipelines.soft_grounding.image_processor import alpha_to_pil
from diffusers_matte.testing import get_dummy_components

# An AutoencoderTiny on the tests' VAE grid: 4 latent channels at half the image's size.
TINY_VAE = dict(
    encoder_block_out_channels=[8, 8],
    decoder_block_out_channels=[8, 8],
    num_encoder_blocks=[1, 1],
    num_decoder_blocks=[1, 1],
)


def save_tiny_vae(path, **overrides) -> None:
    torch.manual_seed(0)
    AutoencoderTiny(**{**TINY_VAE, **overrides}).save_pretrained(path)


@pytest.fixture(scope="module")
def tiny_encoder_dir(tmp_path_factory):
    """Laid out as `training/train_tiny_encoder.py` writes it: the AutoencoderTiny in `vae/`."""
    path = tmp_path_factory.mktemp("tiny-encoder")
    save_tiny_vae(path / "vae")
    return path


@pytest.fixture(scope="module")
def expected_fast_alpha(tiny_model_dir, tiny_encoder_dir, image_file):  # noqa: F811
    """The alpha the Python API gives with the tiny encoder swapped in, as `predict` writes it."""
    tiny = AutoencoderTiny.from_pretrained(tiny_encoder_dir / "vae")
    pipe = SoftGroundingMattingPipeline.from_pretrained(tiny_model_dir, vae=tiny)
    pipe.set_progress_bar_config(disable=True)
    alpha = pipe(read_image(image_file), ["the cat"], output_type="pt").alpha[0]
    return np.asarray(alpha_to_pil(alpha))


def predict(run_cli, image, model, out, *extra) -> np.ndarray:
    code, err = run_cli("predict", image, "--prompt", "the cat", "--model", model, "--output-dir", out, *extra)
    assert code == 0, err
    (written,) = out.glob("*_alpha.png")
    return np.asarray(PIL.Image.open(written))


def one_line_error(run_cli, *argv) -> str:
    code, err = run_cli(*argv)
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def test_vae_runs_the_model_with_the_vae_found_at_the_path(
    run_cli, image_file, tiny_model_dir, tiny_encoder_dir, expected_fast_alpha, tmp_path  # noqa: F811
):
    default = predict(run_cli, image_file, tiny_model_dir, tmp_path / "default")
    for k, vae in enumerate([tiny_encoder_dir, tiny_encoder_dir / "vae"]):  # a folder with vae/, or the VAE's own
        alpha = predict(run_cli, image_file, tiny_model_dir, tmp_path / f"fast-{k}", "--vae", vae)
        np.testing.assert_array_equal(alpha, expected_fast_alpha)
    assert not np.array_equal(default, expected_fast_alpha)  # the tiny encoder's latents, not the model's VAE's


def test_fast_runs_the_model_with_its_vae_tiny(
    run_cli, image_file, tiny_model_dir, tiny_encoder_dir, expected_fast_alpha, tmp_path  # noqa: F811
):
    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    shutil.copytree(tiny_encoder_dir / "vae", model / "vae_tiny")
    np.testing.assert_array_equal(predict(run_cli, image_file, model, tmp_path / "out", "--fast"), expected_fast_alpha)


def test_fast_without_vae_tiny_says_how_to_make_one(run_cli, image_file, tiny_model_dir, tmp_path):  # noqa: F811
    line = one_line_error(
        run_cli, "predict", image_file, "--prompt", "a", "--model", tiny_model_dir, "--output-dir", tmp_path, "--fast"
    )
    assert line == (
        f"diffusers-matte predict: error: --fast: the model {str(tiny_model_dir)!r} has no vae_tiny/ (an "
        "AutoencoderTiny) and its own VAE is not one; distil one with training/train_tiny_encoder.py "
        f"--pretrained_model_name_or_path {tiny_model_dir} and copy its vae/ to {tiny_model_dir / 'vae_tiny'}, or "
        "pass --vae PATH"
    )


def test_fast_on_a_model_whose_vae_is_an_autoencoder_tiny_runs_it_as_it_is(
    run_cli, image_file, tiny_encoder_dir, tmp_path  # noqa: F811
):
    """What the decoder stage writes with `--vae_model_name_or_path`: a pipeline whose own vae is the tiny one."""
    model = tmp_path / "fast-model"
    vae = AutoencoderTiny.from_pretrained(tiny_encoder_dir / "vae")
    components = {**get_dummy_components(), "vae": vae}
    SoftGroundingMattingPipeline(**components, default_processing_resolution=32).save_pretrained(model)
    as_it_is = predict(run_cli, image_file, model, tmp_path / "plain")
    np.testing.assert_array_equal(predict(run_cli, image_file, model, tmp_path / "fast", "--fast"), as_it_is)


def test_a_bad_vae_is_one_line_naming_the_option(run_cli, image_file, tiny_model_dir, tmp_path):  # noqa: F811
    base = ["predict", image_file, "--prompt", "a", "--model", tiny_model_dir, "--output-dir", tmp_path / "out"]
    missing = tmp_path / "missing"
    assert one_line_error(run_cli, *base, "--vae", missing).startswith(
        f"diffusers-matte predict: error: --vae {str(missing)!r} holds no VAE: expected a folder or Hub id with "
        "vae/config.json or config.json"
    )
    assert "its config.json is of MatteUNet2DConditionModel" in one_line_error(
        run_cli, *base, "--vae", tiny_model_dir / "unet"
    )
    save_tiny_vae(tmp_path / "three", latent_channels=3)
    assert one_line_error(run_cli, *base, "--vae", tmp_path / "three").startswith(
        f"diffusers-matte predict: error: the VAE of --vae {str(tmp_path / 'three')!r} gives 3 latent channels, but "
        "the UNet reads 4 (its in_channels)"
    )
    assert "not allowed with argument" in one_line_error(run_cli, *base, "--vae", tmp_path / "three", "--fast")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "extra, expected",
    [(["--vae", "some/vae"], {"vae": "some/vae", "fast": False}), (["--fast"], {"vae": None, "fast": True})],
    ids=["vae", "fast"],
)
@pytest.mark.parametrize("command", MODEL_COMMANDS)
def test_every_command_passes_vae_and_fast_to_load_pipeline(
    run_cli, monkeypatch, command_argv, tiny_model_dir, command, extra, expected  # noqa: F811
):
    calls = capture_load_pipeline(monkeypatch, command)
    with pytest.raises(StopAfterLoading):
        run_cli(*command_argv(command, tiny_model_dir), "--device", "cpu", *extra)
    (call,) = calls
    assert {name: call[name] for name in expected} == expected


def test_evaluate_records_the_vae_so_that_another_vae_is_another_run(
    run_cli, tiny_model_dir, tiny_encoder_dir, tmp_path
):
    args = ["evaluate", "--model", tiny_model_dir, "--protocol", "synthetic", "--synthetic-num-test", 1,
            "--synthetic-image-size", 64, "--output-dir", tmp_path / "eval", "--no-progress", "--warmup", 0]  # fmt: skip
    code, err = run_cli(*args, "--vae", tiny_encoder_dir)
    assert code == 0, err
    run = json.loads((tmp_path / "eval" / "run.json").read_text())
    assert run["vae"] == str(tiny_encoder_dir.resolve()) and run["vae_fingerprint"]
    assert "different run" in one_line_error(run_cli, *args)  # the model's own VAE: not resumed into these rows
    baseline = ["evaluate", "--baseline", "zeros", "--protocol", "synthetic", "--output-dir", tmp_path / "zeros"]
    assert one_line_error(run_cli, *baseline, "--fast").endswith(
        "--vae and --fast choose the VAE of a --model; a --baseline has none"
    )
