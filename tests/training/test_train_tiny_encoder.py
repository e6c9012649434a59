"""The fast mode's tiny-encoder distillation (training/train_tiny_encoder.py) on tiny models: what it trains, what
it writes, and that an interrupted run resumes exactly."""

import json

import numpy as np
import PIL.Image
import pytest
import torch
from diffusers import AutoencoderTiny
from test_training_scripts import read_log, run

from diffusers_matte import SoftGroundingMattingPipeline
from diffusers_matte.pipelines.soft_grounding.pipeline_soft_grounding import encode_latents
from diffusers_matte.testing import get_dummy_components

# An AutoencoderTiny on the tests' VAE grid: 4 latent channels at half the image's size.
TINY_CONFIG = dict(
    encoder_block_out_channels=[8, 8],
    decoder_block_out_channels=[8, 8],
    num_encoder_blocks=[1, 1],
    num_decoder_blocks=[1, 1],
)


@pytest.fixture(scope="module")
def pipeline_dir(tmp_path_factory):
    """A pipeline folder with tiny random models: its `vae/` is the teacher."""
    path = tmp_path_factory.mktemp("pipeline")
    SoftGroundingMattingPipeline(**get_dummy_components()).save_pretrained(path)
    return path


def _config_file(tmp_path, **overrides):
    path = tmp_path / "tiny.json"
    path.write_text(json.dumps({**TINY_CONFIG, **overrides}))
    return path


def test_distils_the_encoder_only_and_writes_a_loadable_vae(pipeline_dir, tmp_path):
    torch.manual_seed(1)
    AutoencoderTiny(**TINY_CONFIG).save_pretrained(tmp_path / "start")
    start = AutoencoderTiny.from_pretrained(tmp_path / "start")
    PIL.Image.fromarray(np.full((40, 56, 3), 128, np.uint8)).save(tmp_path / "val.png")
    out = tmp_path / "out"
    run("train_tiny_encoder", "--pretrained_model_name_or_path", pipeline_dir, "--output_dir", out,
        "--tiny_model_name_or_path", tmp_path / "start", "--max_train_steps", 3, "--learning_rate", 1e-3,
        "--validation_image", tmp_path / "val.png", "--validation_prompt", "the red ball")  # fmt: skip

    log = read_log(out)
    assert [row["step"] for row in log] == [1, 2, 3] and all(row["loss"] > 0 for row in log)
    tiny = AutoencoderTiny.from_pretrained(out / "vae")
    for name, value in start.state_dict().items():
        changed = not torch.equal(value, tiny.state_dict()[name])
        assert changed == name.startswith("encoder."), name  # the decoder is not trained
    assert list((out / "validation").rglob("*.png")) and (out / "README.md").is_file()

    # Its latents sit on the grid of the teacher's z_I: the pipeline's UNet can read them in its place.
    teacher = SoftGroundingMattingPipeline.from_pretrained(pipeline_dir).vae
    pixels = torch.rand(1, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        assert tiny.encode(pixels).latents.shape == encode_latents(teacher, pixels, torch.device("cpu")).shape


def test_resume_continues_exactly(pipeline_dir, tmp_path):
    """A run stopped after its checkpoint at step 2 and resumed ends where an uninterrupted run ends (a constant
    learning rate: the poly schedule would follow the shorter run's length)."""
    args = ["--pretrained_model_name_or_path", pipeline_dir, "--tiny_config", _config_file(tmp_path),
            "--checkpointing_steps", 2, "--lr_scheduler", "constant"]  # fmt: skip
    run("train_tiny_encoder", *args, "--max_train_steps", 4, "--output_dir", tmp_path / "full")
    run("train_tiny_encoder", *args, "--max_train_steps", 2, "--output_dir", tmp_path / "cut")
    run("train_tiny_encoder", *args, "--max_train_steps", 4, "--output_dir", tmp_path / "cut",
        "--resume_from_checkpoint", "latest")  # fmt: skip

    full, cut = read_log(tmp_path / "full"), read_log(tmp_path / "cut")
    assert [r["step"] for r in cut] == [1, 2, 3, 4]
    assert [r["loss"] for r in cut] == pytest.approx([r["loss"] for r in full], rel=1e-5)
    a = AutoencoderTiny.from_pretrained(tmp_path / "full" / "vae").state_dict()
    b = AutoencoderTiny.from_pretrained(tmp_path / "cut" / "vae").state_dict()
    for name, value in a.items():
        torch.testing.assert_close(b[name], value, rtol=1e-5, atol=1e-6)


def test_bad_arguments_are_refused(pipeline_dir, tmp_path):
    base = ["--pretrained_model_name_or_path", pipeline_dir, "--output_dir", tmp_path / "out", "--max_train_steps", 1]
    with pytest.raises(ValueError, match="4 latent channels at 1/4 of the image, the VAE 4 at 1/2"):
        config = _config_file(tmp_path, encoder_block_out_channels=[8, 8, 8], num_encoder_blocks=[1, 1, 1])
        run("train_tiny_encoder", *base, "--tiny_config", config)
    with pytest.raises(SystemExit):  # diffusers' tiny encoder reads unscaled inputs under checkpointing
        run("train_tiny_encoder", *base, "--gradient_checkpointing")
    with pytest.raises(SystemExit):  # one starting point at most
        run("train_tiny_encoder", *base, "--tiny_config", _config_file(tmp_path), "--tiny_model_name_or_path", "x")
