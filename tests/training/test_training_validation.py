"""Validation in every stage, EMA, the model card and what a diffusers-examples user expects of the scripts."""

import json

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file
from test_train_refiner import _args as refiner_args  # the tiny refiner on a stage-3 pipeline
from test_train_refiner import stage3  # noqa: F401 (a fixture)
from test_training_scripts import _tiny_decoder_config, load_script, read_log, run

from diffusers_matte.training_utils import hub_model_id, write_tiny_base_model


@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory):
    return write_tiny_base_model(tmp_path_factory.mktemp("tiny-base"))


@pytest.fixture(scope="module")
def validation_args(tmp_path_factory):
    path = tmp_path_factory.mktemp("val") / "cat.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 56, 3), dtype=np.uint8)).save(path)
    return ["--validation_image", path, "--validation_prompt", "the cat", "--validation_prompt", "the dog",
            "--validation_steps", 1]  # fmt: skip


@pytest.fixture(scope="module")
def teacher_with_validation(tiny_base, validation_args, tmp_path_factory):
    out = tmp_path_factory.mktemp("teacher")
    run("train_teacher", "--pretrained_model_name_or_path", tiny_base, "--output_dir", out, "--max_train_steps", 2,
        "--report_to", "tensorboard", "--use_ema", "--checkpointing_steps", 2, "--base_model_id", "org/tiny-sd", *validation_args)  # fmt: skip
    return out


def test_teacher_logs_its_region_maps_and_puts_the_grid_in_the_card(teacher_with_validation):
    out = teacher_with_validation
    for step in ("step-1", "step-2"):
        for i in (0, 1):
            assert (out / "validation" / step / f"{i}-region_map.png").is_file()
    colours = {
        tuple(c) for c in np.asarray(Image.open(out / "validation" / "step-1" / "0-region_map.png")).reshape(-1, 3)
    }
    assert colours <= {(0, 0, 0), (255, 255, 255), (255, 128, 0)}
    grid = Image.open(out / "validation_grid.png")
    assert grid.size == (2 * 32, 2 * 32)  # columns image, region map; one row per prompt
    events = b"".join(p.read_bytes() for p in (out / "logs").rglob("events.out.tfevents*"))
    assert b"validation/region_map" in events
    card = (out / "README.md").read_text()
    assert "![validation](validation_grid.png)" in card and "base_model: org/tiny-sd" in card
    assert "| synthetic | `--dataset synthetic` |" in card and "TODO" not in card
    assert "`training/train_teacher.py`" in card and "EMA on" in card
    assert [row["source"] for row in read_log(out)] == ["synthetic", "synthetic"]


def test_use_ema_saves_the_average_and_checkpoints_it(teacher_with_validation, tiny_base, tmp_path):
    run(
        "train_teacher", "--pretrained_model_name_or_path", tiny_base, "--output_dir", tmp_path, "--max_train_steps", 2
    )
    ema = load_file(teacher_with_validation / "text_adapter" / "diffusion_pytorch_model.safetensors")
    plain = load_file(tmp_path / "text_adapter" / "diffusion_pytorch_model.safetensors")
    assert any(not torch.equal(ema[k], plain[k]) for k in plain)
    assert (teacher_with_validation / "checkpoint-2" / "ema_state.pt").is_file()


def test_student_and_decoder_log_their_predictions(teacher_with_validation, tiny_base, validation_args, tmp_path):
    student = tmp_path / "student"
    run("train_distill", "--pretrained_model_name_or_path", tiny_base, "--teacher_model_name_or_path",
        teacher_with_validation, "--output_dir", student, "--max_train_steps", 1, *validation_args)  # fmt: skip
    assert {p.name for p in (student / "validation" / "step-1").glob("0-*")} == {
        "0-image.png",
        "0-coarse_alpha.png",
        "0-transparency.png",
    }
    decoder = tmp_path / "decoder"
    run("train_matting_decoder", "--pretrained_model_name_or_path", tiny_base, "--student_model_name_or_path",
        student, "--output_dir", decoder, "--max_train_steps", 1, "--decoder_config", _tiny_decoder_config(tmp_path),
        *validation_args)  # fmt: skip
    assert (decoder / "validation" / "step-1" / "1-alpha.png").is_file() and (
        decoder / "validation_grid.png"
    ).is_file()
    assert "base_model:" not in (decoder / "README.md").read_text()  # a local folder is no Hub id


def test_refiner_logs_its_alpha_and_puts_the_grid_in_the_card(stage3, validation_args, tmp_path):  # noqa: F811
    out = tmp_path / "refiner"
    run("train_refiner", *refiner_args(stage3, out, tmp_path), "--max_train_steps", 2, "--report_to", "tensorboard",
        "--use_ema", *validation_args)  # fmt: skip
    for step in ("step-1", "step-2"):
        assert {p.name for p in (out / "validation" / step).glob("*-*.png")} == {
            f"{i}-{kind}.png" for i in (0, 1) for kind in ("image", "alpha")
        }
    alpha = np.asarray(Image.open(out / "validation" / "step-2" / "0-alpha.png"))
    assert alpha.shape == (64, 64, 3) and alpha.std() > 0  # the refined alpha at --resolution, not a blank
    assert Image.open(out / "validation_grid.png").size == (2 * 64, 2 * 64)  # image, alpha; one row per prompt
    events = b"".join(p.read_bytes() for p in (out / "logs").rglob("events.out.tfevents*"))
    assert b"validation/alpha" in events and b"validation/image" in events
    card = (out / "README.md").read_text()
    assert "![validation](validation_grid.png)" in card and "Columns: image, alpha." in card
    assert "`training/train_refiner.py`" in card and "EMA on" in card


def test_help_shows_defaults_and_options_are_checked(tiny_base, tmp_path, capsys):
    script = load_script("train_teacher")
    with pytest.raises(SystemExit):
        script.parse_args(["--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    for option in (
        "--resolution RESOLUTION square training size (512 in the paper) (default: 512)",
        "--data_schedule {paper,mix}",
        "--validation_steps",
        "--use_ema",
        "--allow_tf32",
        "--scale_lr",
    ):
        assert option in help_text  # fmt: skip
    common = ["--pretrained_model_name_or_path", str(tiny_base), "--output_dir", str(tmp_path)]
    assert script.parse_args([*common, "--resolution", "256"]).morphology_kernel_size == 8  # 15 at 512, scaled
    with pytest.raises(FileNotFoundError, match="--validation_image"):
        script.parse_args([*common, "--validation_prompt", "a", "--validation_image", str(tmp_path / "nope.png")])


def test_scale_lr_multiplies_by_the_total_batch(tiny_base, tmp_path):
    run("train_teacher", "--pretrained_model_name_or_path", tiny_base, "--output_dir", tmp_path, "--max_train_steps", 1,
        "--scale_lr", "--learning_rate", "1e-4", "--lr_scheduler", "constant")  # fmt: skip
    assert read_log(tmp_path)[0]["lr"] == pytest.approx(2e-4)  # batch 2 x 1 process x 1 accumulation


def test_hub_model_id_of_cache_snapshots_and_cards(tmp_path):
    assert hub_model_id("stabilityai/stable-diffusion-2-1") == "stabilityai/stable-diffusion-2-1"
    snapshot = tmp_path / "models--org--sd-model" / "snapshots" / "abc"
    snapshot.mkdir(parents=True)
    assert hub_model_id(str(snapshot)) == "org/sd-model"
    (tmp_path / "README.md").write_text("---\nbase_model: org/base\n---\n")
    assert hub_model_id(str(tmp_path)) == "org/base"
    assert json.dumps(hub_model_id(str(snapshot.parent))) == '"org/sd-model"'
