"""Fast mode in the training stages: `--vae_model_name_or_path` makes a stage train on another VAE's latents (the
tiny encoder's), the pipelines the stages write hold that VAE, and the decoder stage fine-tunes a finished
pipeline's student and decoder on them."""

import re

import numpy as np
import pytest
import torch
from diffusers import AutoencoderTiny
from test_train_tiny_encoder import TINY_CONFIG
from test_training_scripts import base_model, read_log, run  # noqa: F401 (base_model is a fixture)

from diffusers_matte import SoftGroundingMattingPipeline
from diffusers_matte.testing import get_dummy_components


@pytest.fixture(scope="module")
def pipeline_dir(tmp_path_factory):
    """A finished pipeline (tiny random models): the base model, the student and the decoder to fine-tune."""
    path = tmp_path_factory.mktemp("pipeline")
    SoftGroundingMattingPipeline(**get_dummy_components()).save_pretrained(path)
    return path


def save_tiny_vae(path, seed=0, **overrides):
    """An `AutoencoderTiny` on the tests' VAE grid written to `path`; returned as loaded back."""
    torch.manual_seed(seed)
    AutoencoderTiny(**{**TINY_CONFIG, **overrides}).save_pretrained(path)
    return AutoencoderTiny.from_pretrained(path)


@pytest.fixture(scope="module")
def tiny_encoder_dir(tmp_path_factory):
    """A folder laid out as `training/train_tiny_encoder.py` writes it: the AutoencoderTiny in `vae/`."""
    path = tmp_path_factory.mktemp("tiny-encoder")
    save_tiny_vae(path / "vae")
    return path


def fine_tune(pipeline_dir, vae, out, *extra):
    run("train_matting_decoder", "--pretrained_model_name_or_path", pipeline_dir,
        "--student_model_name_or_path", pipeline_dir, "--vae_model_name_or_path", vae, "--output_dir", out,
        "--max_train_steps", 2, *extra)  # fmt: skip
    return SoftGroundingMattingPipeline.from_pretrained(out)


def parameters(model) -> dict[str, torch.Tensor]:
    return {name: p.detach().clone() for name, p in model.named_parameters()}


def assert_same(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=0, atol=0, msg=name)


def test_the_decoder_stage_fine_tunes_student_and_decoder_on_the_tiny_latents(
    pipeline_dir, tiny_encoder_dir, tmp_path
):
    source = SoftGroundingMattingPipeline.from_pretrained(pipeline_dir)
    fast = fine_tune(pipeline_dir, tiny_encoder_dir, tmp_path / "fast", "--decoder_model_name_or_path", pipeline_dir,
                     "--train_unet", "--learning_rate", 1e-3)  # fmt: skip

    assert isinstance(fast.vae, AutoencoderTiny)  # loaded as a plain pipeline, the tiny encoder as its vae
    assert_same(parameters(fast.vae), parameters(AutoencoderTiny.from_pretrained(tiny_encoder_dir / "vae")))
    for name in ("unet", "matting_decoder"):  # both fine-tuned from the source pipeline's weights
        before, after = parameters(getattr(source, name)), parameters(getattr(fast, name))
        assert before.keys() == after.keys()
        assert any(not torch.equal(before[k], after[k]) for k in before), name
    row = read_log(tmp_path / "fast")[-1]
    assert row["loss_alpha_lr"] > 0 and row["loss_r"] > 0 and row["loss"] > row["loss_l1"]
    result = fast(torch.rand(1, 3, 40, 56), prompt="the red ball", processing_resolution=32)
    assert result.alpha.shape == (1, 40, 56, 1) and np.isfinite(result.alpha).all()
    card = (tmp_path / "fast" / "README.md").read_text()
    assert f"`{tiny_encoder_dir}` (`--vae_model_name_or_path`)" in card and "`AutoencoderTiny`" in card


def test_without_train_unet_the_student_stays_and_the_decoder_starts_from_the_given_one(
    pipeline_dir, tiny_encoder_dir, tmp_path
):
    """With a zero learning rate nothing moves: the output holds the source's decoder and student, and the VAE
    named by its own folder."""
    source = SoftGroundingMattingPipeline.from_pretrained(pipeline_dir)
    fast = fine_tune(pipeline_dir, tiny_encoder_dir / "vae", tmp_path / "fast",
                     "--decoder_model_name_or_path", pipeline_dir, "--learning_rate", 0)  # fmt: skip
    assert isinstance(fast.vae, AutoencoderTiny)
    assert_same(parameters(fast.unet), parameters(source.unet))
    assert_same(parameters(fast.matting_decoder), parameters(source.matting_decoder))
    assert "loss_alpha_lr" not in read_log(tmp_path / "fast")[-1]


def test_the_refiner_stage_trains_and_saves_with_the_tiny_vae(pipeline_dir, tiny_encoder_dir, tmp_path):
    run("train_refiner", "--pretrained_model_name_or_path", pipeline_dir, "--pipeline_model_name_or_path",
        pipeline_dir, "--vae_model_name_or_path", tiny_encoder_dir, "--output_dir", tmp_path / "hr",
        "--resolution", 64, "--processing_resolution", 32, "--max_train_steps", 1)  # fmt: skip
    pipe = SoftGroundingMattingPipeline.from_pretrained(tmp_path / "hr")
    assert isinstance(pipe.vae, AutoencoderTiny) and pipe.refiner is not None
    assert "`--vae_model_name_or_path`" in (tmp_path / "hr" / "README.md").read_text()


@pytest.mark.parametrize("stage", ["train_teacher", "train_matting_decoder", "train_refiner"])
def test_a_vae_whose_latents_the_unet_cannot_read_is_refused(stage, base_model, pipeline_dir, tmp_path):  # noqa: F811
    vae = tmp_path / "three-channels"
    save_tiny_vae(vae, latent_channels=3)
    models = {
        "train_teacher": ["--pretrained_model_name_or_path", base_model],
        "train_matting_decoder": ["--pretrained_model_name_or_path", pipeline_dir,
                                  "--student_model_name_or_path", pipeline_dir],
        "train_refiner": ["--pretrained_model_name_or_path", pipeline_dir,
                          "--pipeline_model_name_or_path", pipeline_dir, "--resolution", 64],
    }[stage]  # fmt: skip
    message = re.escape(f"the VAE of --vae_model_name_or_path '{vae}' gives 3 latent channels, but the UNet reads 4")
    with pytest.raises(ValueError, match=message):
        run(stage, *models, "--vae_model_name_or_path", vae, "--output_dir", tmp_path / "out", "--max_train_steps", 1)


def test_a_folder_without_a_vae_is_refused(pipeline_dir, tmp_path):
    args = ["--pretrained_model_name_or_path", pipeline_dir, "--student_model_name_or_path", pipeline_dir]
    (tmp_path / "empty").mkdir()
    for folder, given in [
        (tmp_path / "empty", "the folder has no vae/config.json or config.json"),
        (pipeline_dir / "unet", "its config.json is of MatteUNet2DConditionModel"),
    ]:
        with pytest.raises(ValueError, match=re.escape(f"--vae_model_name_or_path '{folder}' holds no VAE")) as error:
            run("train_matting_decoder", *args, "--vae_model_name_or_path", folder, "--output_dir", tmp_path / "out",
                "--max_train_steps", 1, "--overwrite_output_dir")  # fmt: skip
        assert given in str(error.value)


def test_bad_fine_tuning_arguments_are_refused(pipeline_dir, tmp_path):
    script_args = ["--pretrained_model_name_or_path", pipeline_dir, "--student_model_name_or_path", pipeline_dir,
                   "--output_dir", tmp_path / "out"]  # fmt: skip
    with pytest.raises(
        ValueError, match=re.escape(f"--decoder_model_name_or_path '{tmp_path}' has no matting_decoder/")
    ):
        run("train_matting_decoder", *script_args, "--decoder_model_name_or_path", tmp_path)
    with pytest.raises(SystemExit):  # one starting point for the decoder at most
        run("train_matting_decoder", *script_args, "--decoder_model_name_or_path", pipeline_dir,
            "--decoder_config", tmp_path / "decoder.json")  # fmt: skip
    with pytest.raises(SystemExit):  # the tiny encoder's teacher is the base model's VAE
        run("train_tiny_encoder", "--pretrained_model_name_or_path", pipeline_dir, "--output_dir", tmp_path / "tiny",
            "--vae_model_name_or_path", pipeline_dir)  # fmt: skip
