"""The replication benchmark's own logic: its grounding probe, its recipe guard, and (slow) the whole recipe."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import grounding_probe  # noqa: E402
import synthetic_ablation  # noqa: E402


@pytest.fixture(scope="module")
def rows(tmp_path_factory):
    from diffusers_matte.data.synthetic import load_synthetic_matting

    cache = tmp_path_factory.mktemp("synthetic_cache")
    return load_synthetic_matting(1, 2, seed=3, image_size=64, cache_dir=str(cache))[
        "test"
    ]


def _alpha_of(rows):
    """An oracle predictor: for each prompt, the alpha of the instance that owns the expression."""
    owner = {
        text: np.asarray(r["alpha"], np.float32) / 255.0
        for r in rows
        for text in r["texts"]
    }
    return lambda image, prompts: {"oracle": [owner[p] for p in prompts]}


def test_probe_of_an_oracle_sees_only_the_referred_instance(rows):
    means = grounding_probe.probe(rows, _alpha_of(rows))["oracle"]
    assert means["referred"] > 0.1
    assert means["others"] == 0.0 and means["background"] == 0.0
    assert means["sad"] == pytest.approx(0.0, abs=1e-9)


def test_probe_sad_of_an_empty_matte_is_the_alpha_mass(rows):
    zero = lambda image, prompts: {
        "zero": [np.zeros(image.size[::-1], np.float32)] * len(prompts)
    }
    means = grounding_probe.probe(rows, zero)["zero"]
    pairs = [
        np.asarray(r["alpha"], np.float64).sum() / 255 / 1000
        for r in rows
        for _ in r["texts"]
    ]
    assert means["sad"] == pytest.approx(np.mean(pairs))
    assert means["referred"] == means["others"] == means["background"] == 0.0


def test_teacher_predictor_refuses_an_unknown_output():
    with pytest.raises(ValueError, match="P\\(foreground\\)"):
        grounding_probe.teacher_predictor("unused", "unused", 32, outputs=("alpha",))


def test_recipe_guard_refuses_a_work_dir_made_with_other_sizes(tmp_path):
    path = tmp_path / "recipe.json"
    synthetic_ablation.check_recipe(path, {"teacher_steps": 10, "batch_size": 4})
    assert json.loads(path.read_text()) == {"teacher_steps": 10, "batch_size": 4}
    synthetic_ablation.check_recipe(
        path, {"teacher_steps": 10, "batch_size": 4}
    )  # same: resumes
    with pytest.raises(SystemExit, match="teacher_steps.*10, 20.*new --work_dir"):
        synthetic_ablation.check_recipe(path, {"teacher_steps": 20, "batch_size": 4})


@pytest.mark.slow
def test_quick_recipe_runs_end_to_end_and_resumes(tmp_path):
    results = tmp_path / "ablation.md"
    argv = ["--work_dir", str(tmp_path / "work"), "--quick", "--results", str(results)]
    synthetic_ablation.main(argv + ["--teacher_steps", "3"])
    text = results.read_text()
    assert "--quick --teacher_steps 3" in text
    for row in (
        "trivial baseline",
        "(a) direct",
        "(b) localisation",
        "(c) full framework",
        "P(foreground)",
    ):
        assert row in text
    timings = json.loads((tmp_path / "work" / "timings.json").read_text())
    synthetic_ablation.main(
        argv + ["--teacher_steps", "3"]
    )  # every stage is found done
    assert json.loads((tmp_path / "work" / "timings.json").read_text()) == timings
    with pytest.raises(SystemExit, match="another recipe"):
        synthetic_ablation.main(argv)
