"""End to end: --eval_protocol through the stage scripts: metrics files, trackers and the model card."""

import json

from test_stages_real_sets import launch_two_processes
from test_train_refiner import _args as refiner_args
from test_train_refiner import stage3  # noqa: F401 (a fixture)
from test_training_scripts import read_log, run

from diffusers_matte.training_loop.validation import EVALUATION_DIR

EVAL = ["--eval_protocol", "synthetic", "--synthetic_num_test", 1, "--eval_max_samples", 4, "--eval_steps", 2]


def test_refiner_scores_the_synthetic_split_while_it_trains(stage3, tmp_path):  # noqa: F811
    out = tmp_path / "out"
    run("train_refiner", *refiner_args(stage3, out, tmp_path), "--max_train_steps", 3, "--report_to", "tensorboard",
        "--dataset_cache_dir", tmp_path / "cache", *EVAL)  # fmt: skip
    assert sorted(p.name for p in (out / EVALUATION_DIR).iterdir()) == ["step-2", "step-3"]
    summary = json.loads((out / EVALUATION_DIR / "step-3" / "metrics.json").read_text())
    assert summary["num_samples"] == 4 and summary["run"]["stage"] == "refiner"
    assert all(summary["mean"][name] > 0 for name in ("sad", "mse", "grad", "conn"))
    events = b"".join(p.read_bytes() for p in (out / "logs").rglob("events.out.tfevents*"))
    assert b"eval/sad" in events and b"eval/conn" in events
    assert [row["step"] for row in read_log(out)] == [1, 2, 3]
    card = (out / "README.md").read_text()
    assert "## Evaluation during training" in card and "`synthetic` protocol, 4 samples, step 3" in card


def test_two_processes_share_the_evaluation(stage3, tmp_path):  # noqa: F811
    out = tmp_path / "ddp"
    launch_two_processes("train_refiner", *refiner_args(stage3, out, tmp_path), "--max_train_steps", 2,
                         "--dataset_cache_dir", tmp_path / "cache", *EVAL)  # fmt: skip
    summary = json.loads((out / EVALUATION_DIR / "step-2" / "metrics.json").read_text())
    assert summary["num_samples"] == 4 and summary["complete"] and summary["run"]["stage"] == "refiner"
    assert [row["processes"] for row in read_log(out)] == [2, 2]
