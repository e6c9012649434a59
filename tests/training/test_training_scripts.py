"""The three training stages run end to end on tiny models and synthetic data, and resume exactly."""

import importlib.util
import json
from pathlib import Path

import pytest
import torch
from accelerate.state import AcceleratorState, GradientState, PartialState
from diffusers import UNet2DConditionModel

from diffusers_matte import SoftGroundingMattingPipeline, training_utils
from diffusers_matte.testing import get_dummy_components, get_dummy_unet_init_dict

SCRIPTS = Path(__file__).resolve().parents[2] / "training"
COMMON = [
    "--dataset", "synthetic", "--synthetic_num_train", "3", "--synthetic_image_size", "64",
    "--resolution", "32", "--train_batch_size", "2", "--report_to", "none", "--seed", "0",
]  # fmt: skip


def load_script(name):
    spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run(name, *args):
    """Run a training script in-process, as `accelerate launch` would with one process."""
    for state in (AcceleratorState, GradientState, PartialState):
        state._reset_state()
    script = load_script(name)
    script.main(script.parse_args([*COMMON, *map(str, args)]))


def read_log(output_dir):
    return [json.loads(line) for line in (Path(output_dir) / "train_log.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def base_model(tmp_path_factory):
    """A Stable-Diffusion-shaped folder with tiny random models (vae, text_encoder, tokenizer, unet)."""
    path = tmp_path_factory.mktemp("tiny-sd")
    components = get_dummy_components()
    for name in ("vae", "text_encoder", "tokenizer"):
        components[name].save_pretrained(path / name)
    torch.manual_seed(0)
    UNet2DConditionModel(**get_dummy_unet_init_dict()).save_pretrained(path / "unet")
    return path


@pytest.fixture(scope="module")
def teacher(base_model, tmp_path_factory):
    out = tmp_path_factory.mktemp("teacher")
    run("train_teacher", "--pretrained_model_name_or_path", base_model, "--output_dir", out,
        "--max_train_steps", 2, "--checkpointing_steps", 1, "--checkpoints_total_limit", 1)  # fmt: skip
    return out


@pytest.fixture(scope="module")
def student(base_model, teacher, tmp_path_factory):
    out = tmp_path_factory.mktemp("student")
    run("train_distill", "--pretrained_model_name_or_path", base_model, "--teacher_model_name_or_path", teacher,
        "--output_dir", out, "--max_train_steps", 2)  # fmt: skip
    return out


def test_teacher_stage_writes_models_and_prunes_checkpoints(teacher):
    assert (teacher / "unet" / "config.json").exists() and (teacher / "text_adapter" / "config.json").exists()
    assert json.loads((teacher / "unet" / "config.json").read_text())["prediction_head"] == "region"
    assert sorted(p.name for p in teacher.glob("checkpoint-*")) == ["checkpoint-2"]
    log = read_log(teacher)
    assert [row["step"] for row in log] == [1, 2] and all(row["loss"] > 0 for row in log)


def test_distill_stage_trains_pruned_student_with_all_losses(student):
    config = json.loads((student / "unet" / "config.json").read_text())
    assert config["prediction_head"] == "matte" and config["self_attention_kv_downsample"] == [-1, 2, 2]
    assert len(config["block_out_channels"]) == 3  # BK-SDM tiny
    assert (student / "projector" / "config.json").exists()
    row = read_log(student)[-1]
    for term in ("stm", "ctm", "sg", "alpha_lr", "r"):
        assert row[f"loss_{term}"] > 0, term


def test_decoder_stage_writes_a_loadable_pipeline(base_model, student, tmp_path):
    out = tmp_path / "pipeline"
    run("train_matting_decoder", "--pretrained_model_name_or_path", base_model,
        "--student_model_name_or_path", student, "--output_dir", out, "--max_train_steps", 2,
        "--decoder_config", _tiny_decoder_config(tmp_path))  # fmt: skip
    pipe = SoftGroundingMattingPipeline.from_pretrained(out)
    result = pipe(torch.rand(1, 3, 40, 56), prompt="the red ball", processing_resolution=32)
    assert result.alpha.shape == (1, 40, 56, 1)


def test_no_distillation_ablation_uses_only_matte_losses(base_model, teacher, tmp_path):
    run("train_distill", "--pretrained_model_name_or_path", base_model, "--teacher_model_name_or_path", teacher,
        "--output_dir", tmp_path, "--max_train_steps", 1, "--no_distillation")  # fmt: skip
    row = read_log(tmp_path)[-1]
    assert row["loss_sg"] == row["loss_stm"] == row["loss_ctm"] == 0 and row["loss_alpha_lr"] > 0
    assert not (tmp_path / "projector").exists()


class Interrupted(Exception):
    pass


def test_resume_continues_exactly(base_model, tmp_path, monkeypatch):
    args = [
        "--pretrained_model_name_or_path",
        base_model,
        "--checkpointing_steps",
        2,
        "--max_train_steps",
        4,
    ]
    run("train_teacher", *args, "--output_dir", tmp_path / "full")

    save = training_utils.save_checkpoint

    def save_then_die(*a, **kw):  # the job is killed right after its first checkpoint
        save(*a, **kw)
        raise Interrupted

    monkeypatch.setattr(training_utils, "save_checkpoint", save_then_die)
    with pytest.raises(Interrupted):
        run("train_teacher", *args, "--output_dir", tmp_path / "cut")
    monkeypatch.setattr(training_utils, "save_checkpoint", save)
    run(
        "train_teacher",
        *args,
        "--output_dir",
        tmp_path / "cut",
        "--resume_from_checkpoint",
        "latest",
    )

    full, cut = read_log(tmp_path / "full"), read_log(tmp_path / "cut")
    assert [r["step"] for r in cut] == [1, 2, 3, 4]
    for a, b in zip(full, cut):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-6), a["step"]
        assert a["lr"] == b["lr"]


def test_bad_arguments_are_refused(base_model, tmp_path):
    script = load_script("train_teacher")
    with pytest.raises(ValueError, match="--max_train_steps"):
        script.parse_args(
            [
                *COMMON,
                "--pretrained_model_name_or_path",
                str(base_model),
                "--output_dir",
                str(tmp_path),
                "--max_train_steps",
                "0",
            ]
        )
    with pytest.raises(FileNotFoundError, match="--dataset"):
        run(
            "train_teacher",
            "--pretrained_model_name_or_path",
            base_model,
            "--output_dir",
            tmp_path,
            "--dataset",
            tmp_path / "nope",
        )


def _tiny_decoder_config(tmp_path):
    path = tmp_path / "decoder.json"
    path.write_text(
        json.dumps(
            dict(
                aligned_channels=8,
                convstream_channels=[4, 8, 8],
                fusion_channels=[8, 8, 4, 4],
                head_channels=4,
            )
        )
    )
    return path


def test_two_processes_under_accelerate_launch(base_model, tmp_path):
    """DDP over gloo on CPU. `accelerate launch --cpu --num_processes 2` silently runs one process; this form
    runs two (checked through the log)."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": "1"}
    command = [
        sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
        "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
        str(SCRIPTS / "train_distill.py"), *COMMON, "--pretrained_model_name_or_path", str(base_model),
        "--teacher_model_name_or_path", str(_teacher_for_ddp(base_model, tmp_path)),
        "--output_dir", str(tmp_path / "ddp"), "--max_train_steps", "2",
    ]  # fmt: skip
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    log = read_log(tmp_path / "ddp")
    assert [row["processes"] for row in log] == [2, 2]
    assert (tmp_path / "ddp" / "unet" / "config.json").exists()


def _teacher_for_ddp(base_model, tmp_path):
    out = tmp_path / "teacher"
    run(
        "train_teacher",
        "--pretrained_model_name_or_path",
        base_model,
        "--output_dir",
        out,
        "--max_train_steps",
        1,
    )
    return out


def test_morphology_kernel_size_sets_the_region_maps_band(base_model, tmp_path):
    from diffusers_matte.training_loop import make_dataloader

    script = load_script("train_teacher")
    common = [
        *COMMON,
        "--pretrained_model_name_or_path",
        str(base_model),
        "--output_dir",
        str(tmp_path),
    ]
    transparent = {}
    for size in (1, 15):
        args = script.parse_args([*common, "--morphology_kernel_size", str(size)])
        batch = next(iter(make_dataloader(args, latent_factor=2)))
        transparent[size] = (batch["region_map"] == 2).float().mean().item()
    assert transparent[1] < transparent[15]
    with pytest.raises(ValueError, match="--morphology_kernel_size"):
        script.parse_args([*common, "--morphology_kernel_size", "0"])


def test_a_batch_larger_than_the_data_is_refused(base_model, tmp_path):
    with pytest.raises(ValueError, match="no full batch"):
        run("train_teacher", "--pretrained_model_name_or_path", base_model, "--output_dir", tmp_path,
            "--train_batch_size", 1000)  # fmt: skip


def test_prediction_timestep_reaches_the_teacher_and_its_student(base_model, tmp_path):
    teacher, student = tmp_path / "teacher", tmp_path / "student"
    run("train_teacher", "--pretrained_model_name_or_path", base_model, "--output_dir", teacher,
        "--max_train_steps", 1, "--prediction_timestep", 500)  # fmt: skip
    assert json.loads((teacher / "unet" / "config.json").read_text())["prediction_timestep"] == 500
    run("train_distill", "--pretrained_model_name_or_path", base_model, "--teacher_model_name_or_path", teacher,
        "--output_dir", student, "--max_train_steps", 1)  # fmt: skip
    assert json.loads((student / "unet" / "config.json").read_text())["prediction_timestep"] == 500
    with pytest.raises(ValueError, match="--prediction_timestep must be 0 or more, got -1"):
        load_script("train_teacher").parse_args(
            [*COMMON, "--pretrained_model_name_or_path", str(base_model), "--output_dir", str(tmp_path / "x"),
             "--prediction_timestep", "-1"]
        )  # fmt: skip
