"""Several named sets per run: the paper's schedule per step, exact resume, augmentation, clear errors."""

import argparse
import sys
from pathlib import Path

import numpy as np
import pytest

from diffusers_matte import training_utils
from diffusers_matte.data.schedule import DataSchedule, ProportionalSchedule
from diffusers_matte.training_loop import DatasetArgumentError, make_augmentations

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "data"))
from matting_layouts import make_am2k, make_folder, make_p3m, make_refcoco, make_refmatte  # noqa: E402
from test_training_scripts import COMMON, base_model, load_script, read_log  # noqa: F401,E402

ALL_SETS = ["refmatte", "refcoco", "p3m10k", "am2k", "folder"]
NO_DATA = COMMON[COMMON.index("--dataset") + 2 :]  # the tiny-run arguments without the synthetic set


def run(name, *args):
    from accelerate.state import AcceleratorState, GradientState, PartialState

    for state in (AcceleratorState, GradientState, PartialState):
        state._reset_state()
    script = load_script(name)
    script.main(script.parse_args([*NO_DATA, *map(str, args)]))


@pytest.fixture(scope="module")
def layouts(tmp_path_factory):
    root = tmp_path_factory.mktemp("sets")
    make_refmatte(root / "refmatte", "train", (2, 1))
    make_refcoco(root / "refcoco")
    make_p3m(root / "p3m")
    make_am2k(root / "am2k")
    make_folder(root / "mine")
    folders = dict(refmatte="refmatte", refcoco="refcoco", p3m10k="p3m", am2k="am2k", folder="mine")
    args = []
    for name, folder in folders.items():
        args += ["--dataset", f"{name}={root / folder}"]
    return root, args + ["--refcoco_alpha", "mask", "--dataset_cache_dir", str(root / "cache")]


def teacher_args(base_model, layouts, output_dir, *extra):  # noqa: F811
    return ["--pretrained_model_name_or_path", base_model, "--output_dir", output_dir, *layouts[1], *extra]


def test_each_step_trains_on_the_set_the_paper_schedule_names(base_model, layouts, tmp_path):  # noqa: F811
    run("train_teacher", *teacher_args(base_model, layouts, tmp_path, "--max_train_steps", 6))
    sources = [row["source"] for row in read_log(tmp_path)]
    special = ["p3m10k", "am2k", "rm1k", "folder"]
    assert sources == DataSchedule(ALL_SETS, special=special, seed=0).sources(0, 6)
    assert sources[:4] == ["refmatte", "refcoco", "refmatte", "refcoco"] and sources[4] in special


def test_mix_schedule_draws_sets_by_size(base_model, layouts, tmp_path):  # noqa: F811
    run(
        "train_teacher", *teacher_args(base_model, layouts, tmp_path, "--max_train_steps", 3, "--data_schedule", "mix")
    )
    sizes = {"refmatte": 3, "refcoco": 2, "p3m10k": 3, "am2k": 3, "folder": 3}
    assert [row["source"] for row in read_log(tmp_path)] == ProportionalSchedule(sizes, seed=0).sources(0, 3)


class Interrupted(Exception):
    pass


def test_a_resumed_scheduled_run_repeats_the_sources_and_losses(
    base_model, layouts, tmp_path, monkeypatch  # noqa: F811
):
    args = ["--max_train_steps", 5, "--checkpointing_steps", 3]
    run("train_teacher", *teacher_args(base_model, layouts, tmp_path / "full", *args))
    save = training_utils.save_checkpoint

    def save_then_die(*a, **kw):
        save(*a, **kw)
        raise Interrupted

    monkeypatch.setattr(training_utils, "save_checkpoint", save_then_die)
    with pytest.raises(Interrupted):
        run("train_teacher", *teacher_args(base_model, layouts, tmp_path / "cut", *args))
    monkeypatch.setattr(training_utils, "save_checkpoint", save)
    run(
        "train_teacher",
        *teacher_args(base_model, layouts, tmp_path / "cut", *args, "--resume_from_checkpoint", "latest"),
    )
    full, cut = read_log(tmp_path / "full"), read_log(tmp_path / "cut")
    assert [r["source"] for r in full] == [r["source"] for r in cut]
    assert [r["loss"] for r in full] == pytest.approx([r["loss"] for r in cut], rel=1e-6)


def test_bad_dataset_values_name_the_argument_and_the_path(base_model, layouts, tmp_path):  # noqa: F811
    root = layouts[0]
    common = ["--pretrained_model_name_or_path", base_model, "--output_dir", tmp_path, "--max_train_steps", 1]
    with pytest.raises(ValueError, match=r"--dataset 'coco=/x': unknown set 'coco'"):
        run("train_teacher", *common, "--dataset", "coco=/x")
    with pytest.raises(DatasetArgumentError, match=r"--dataset 'am2k=.*nowhere'.*does not exist"):
        run("train_teacher", *common, "--dataset", f"am2k={root / 'nowhere'}")
    with pytest.raises(DatasetArgumentError, match=r"--dataset 'refmatte=.*p3m'.*layout of the refmatte folder"):
        run("train_teacher", *common, "--dataset", f"refmatte={root / 'p3m'}", "--dataset_cache_dir", tmp_path / "c")


def _augment(name, **flags):
    return make_augmentations(argparse.Namespace(no_augment=False, no_rssn=False, **flags)).get(name)


def test_augmentation_changes_the_background_and_flips_swap_left_and_right():
    image = np.zeros((40, 40, 3), np.uint8)
    image[:, ::4] = 255  # a striped background: blur and noise change it
    alpha = np.zeros((40, 40), np.float32)
    alpha[10:30, 5:15] = 1.0
    rssn = _augment("am2k")
    changed = [not np.array_equal(rssn(image, alpha, "", np.random.default_rng(s))[0], image) for s in range(8)]
    assert any(changed)
    texts = {_augment("refcoco")(image, alpha, "the left dog", np.random.default_rng(s))[2] for s in range(8)}
    assert texts == {"the left dog", "the right dog"}
    assert _augment("synthetic") is None
    assert make_augmentations(argparse.Namespace(no_augment=True, no_rssn=False)) == {}
    assert _augment("p3m10k", **{}) is not _augment("refcoco")
    no_rssn = make_augmentations(argparse.Namespace(no_augment=False, no_rssn=True))
    assert no_rssn["p3m10k"].p_blur == 0 and no_rssn["p3m10k"].p_noise == 0


def test_two_processes_train_each_step_on_the_scheduled_set(base_model, layouts, tmp_path):  # noqa: F811
    import os
    import subprocess

    from test_training_scripts import SCRIPTS

    env = {**os.environ, "ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": "1"}
    command = [
        sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
        "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", str(SCRIPTS / "train_teacher.py"),
        *map(str, teacher_args(base_model, layouts, tmp_path / "ddp", *NO_DATA, "--max_train_steps", 5)),
    ]  # fmt: skip
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    log = read_log(tmp_path / "ddp")
    special = ["p3m10k", "am2k", "rm1k", "folder"]
    assert [row["source"] for row in log] == DataSchedule(ALL_SETS, special=special, seed=0).sources(0, 5)
    assert {row["processes"] for row in log} == {2}
