"""The student, matting-decoder and refiner stages on the fixture layouts of the real sets (RefMatte, RefCOCO,
P3M-10k, AM-2k, a folder), all five `--dataset` arguments at once: each step trains on the set the paper's
schedule names, in one process and in two (DDP over gloo, as `accelerate launch` runs them)."""

import json
import os
import subprocess
import sys

import pytest
import torch
from test_training_data import ALL_SETS, NO_DATA, layouts, run, teacher_args  # noqa: F401 (layouts is a fixture)
from test_training_scripts import SCRIPTS, _tiny_decoder_config, base_model, read_log  # noqa: F401

from diffusers_matte import SoftGroundingMattingPipeline
from diffusers_matte.data.schedule import DataSchedule
from diffusers_matte.models.sparse_refiner import SparseMatteRefiner

STEPS = 5  # refmatte, refcoco, refmatte, refcoco, then the special iteration


def paper_sources(steps: int) -> list[str]:
    """The sets of the first `steps` steps under `--data_schedule paper` with the five fixture sets, seed 0."""
    return DataSchedule(ALL_SETS, special=["p3m10k", "am2k", "rm1k", "folder"], seed=0).sources(0, steps)


def check_scheduled_log(output_dir, processes: int = 1) -> list[dict]:
    """The step log of a run on the five sets: one line per step, each from the scheduled set, with a loss."""
    log = read_log(output_dir)
    assert [row["step"] for row in log] == list(range(1, STEPS + 1))
    assert [row["source"] for row in log] == paper_sources(STEPS)
    assert all(row["processes"] == processes for row in log)
    assert all(row["loss"] > 0 and row["loss"] == row["loss"] for row in log)  # positive and not NaN
    return log


def launch_two_processes(script: str, *args) -> None:
    """`accelerate launch --multi_gpu --num_processes 2` on CPU (gloo); `--cpu --num_processes 2` would run one."""
    env = {**os.environ, "ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": "1"}
    command = [
        sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
        "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", str(SCRIPTS / f"{script}.py"),
        *NO_DATA, *map(str, args),
    ]  # fmt: skip
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]


@pytest.fixture(scope="module")
def teacher(base_model, layouts, tmp_path_factory):  # noqa: F811
    out = tmp_path_factory.mktemp("teacher")
    run("train_teacher", *teacher_args(base_model, layouts, out, "--max_train_steps", 1))
    return out


def distill_args(base_model, layouts, teacher, output_dir):  # noqa: F811
    return [*teacher_args(base_model, layouts, output_dir, "--max_train_steps", STEPS),
            "--teacher_model_name_or_path", teacher]  # fmt: skip


@pytest.fixture(scope="module")
def student(base_model, layouts, teacher, tmp_path_factory):  # noqa: F811
    out = tmp_path_factory.mktemp("student")
    run("train_distill", *distill_args(base_model, layouts, teacher, out))
    return out


def decoder_args(base_model, layouts, student, output_dir):  # noqa: F811
    config = _tiny_decoder_config(output_dir.parent)
    return [*teacher_args(base_model, layouts, output_dir, "--max_train_steps", STEPS),
            "--student_model_name_or_path", student, "--decoder_config", config]  # fmt: skip


@pytest.fixture(scope="module")
def decoder(base_model, layouts, student, tmp_path_factory):  # noqa: F811
    out = tmp_path_factory.mktemp("decoder") / "pipeline"
    run("train_matting_decoder", *decoder_args(base_model, layouts, student, out))
    return out


def refiner_args(base_model, layouts, decoder, output_dir):  # noqa: F811
    config = output_dir.parent / "refiner.json"
    config.write_text(json.dumps(dict(hidden_channels=[4])))
    return [*teacher_args(base_model, layouts, output_dir, "--max_train_steps", STEPS),
            "--pipeline_model_name_or_path", decoder, "--resolution", 64, "--processing_resolution", 32,
            "--refiner_config", config]  # fmt: skip


def test_student_trains_each_step_on_the_scheduled_set(student):
    log = check_scheduled_log(student)
    assert all(row["loss_alpha_lr"] > 0 and row["loss_r"] > 0 for row in log)
    assert json.loads((student / "unet" / "config.json").read_text())["prediction_head"] == "matte"
    card = (student / "README.md").read_text()
    assert all(f"| {name} |" in card for name in ALL_SETS)  # the card says what the stage was trained on


def test_decoder_trains_each_step_on_the_scheduled_set_and_writes_a_pipeline(decoder):
    check_scheduled_log(decoder)
    pipe = SoftGroundingMattingPipeline.from_pretrained(decoder)
    alpha = pipe(torch.rand(1, 3, 16, 24, generator=torch.Generator().manual_seed(0)), "the dog").alpha
    assert alpha.shape == (1, 16, 24, 1) and ((alpha >= 0) & (alpha <= 1)).all()


def test_refiner_trains_each_step_on_the_scheduled_set(base_model, layouts, decoder, tmp_path):  # noqa: F811
    out = tmp_path / "refiner"
    run("train_refiner", *refiner_args(base_model, layouts, decoder, out))
    check_scheduled_log(out)
    assert isinstance(SoftGroundingMattingPipeline.from_pretrained(out).refiner, SparseMatteRefiner)


STAGES = {  # script: (its arguments, the fixture it continues from, the model folder it writes)
    "train_distill": (distill_args, "teacher", "unet"),
    "train_matting_decoder": (decoder_args, "student", "matting_decoder"),
    "train_refiner": (refiner_args, "decoder", "refiner"),
}


@pytest.mark.parametrize("script", list(STAGES))
def test_two_processes_train_on_the_scheduled_sets(script, base_model, layouts, tmp_path, request):  # noqa: F811
    make_args, previous, model = STAGES[script]
    out = tmp_path / "ddp"
    launch_two_processes(script, *make_args(base_model, layouts, request.getfixturevalue(previous), out))
    check_scheduled_log(out, processes=2)
    assert (out / model / "config.json").is_file()
