"""`diffusers-matte predict` reports each matte's grounding score and, with `--min-score`, leaves out the mattes of
prompts that score below it."""

import json

import numpy as np
import PIL.Image
import pytest

from diffusers_matte.pipelines.soft_grounding.image_processor import load_image

PROMPTS = ("the cat", "a dog")


@pytest.fixture
def photos(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for stem, shape in (("cat", (30, 44, 3)), ("dog", (26, 20, 3))):
        PIL.Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8)).save(folder / f"{stem}.png")
    return folder


@pytest.fixture
def scores(tiny_pipe, photos):
    """{(image stem, prompt): the pipeline's own score}."""
    found = {}
    for path in sorted(photos.iterdir()):
        image = load_image(PIL.Image.open(path))
        for prompt, score in zip(PROMPTS, tiny_pipe(image, list(PROMPTS)).grounding_score):
            found[(path.stem, prompt)] = float(score)
    return found


def _predict(run_cli, photos, out, model_dir, *extra):
    prompts = [arg for prompt in PROMPTS for arg in ("--prompt", prompt)]
    return run_cli("predict", photos, *prompts, "--model", model_dir, "--output-dir", out, *extra)


def _manifest(out):
    return json.loads((out / "diffusers-matte-outputs.json").read_text(encoding="utf-8"))


def _file(stem, prompt):
    return f"{stem}_{prompt.replace(' ', '-')}_alpha.png"


def test_the_json_carries_each_files_grounding_score(run_cli, tiny_model_dir, photos, scores, tmp_path):
    out = tmp_path / "out"
    code, err = _predict(run_cli, photos, out, tiny_model_dir)
    assert code == 0, err
    outputs = _manifest(out)["outputs"]
    assert sorted(outputs) == sorted(_file(*key) for key in scores)
    for (stem, prompt), score in scores.items():
        entry = outputs[_file(stem, prompt)]
        assert entry["prompt"] == prompt and entry["grounding_score"] == pytest.approx(score, abs=1e-4)
    assert "skipped" not in _manifest(out) and "grounding scores in diffusers-matte-outputs.json" in err


def test_min_score_skips_the_mattes_below_it_and_says_so(run_cli, tiny_model_dir, photos, scores, tmp_path):
    ranked = sorted(scores.items(), key=lambda item: item[1])
    assert ranked[0][1] < ranked[-1][1]
    threshold = (ranked[0][1] + ranked[1][1]) / 2  # only the lowest-scoring matte is below it
    (low_stem, low_prompt), low = ranked[0]
    out = tmp_path / "out"
    code, err = _predict(run_cli, photos, out, tiny_model_dir, "--min-score", f"{threshold:.6f}")
    assert code == 0, err
    skipped_file = _file(low_stem, low_prompt)
    assert not (out / skipped_file).exists()
    assert sorted(p.name for p in out.glob("*.png")) == sorted(_file(*key) for key, _ in ranked[1:])
    assert f"skipped {skipped_file}: grounding score {low:.3f} < --min-score" in err
    assert f"wrote 3 file(s) to {out}, skipped 1 below --min-score" in err
    manifest = _manifest(out)
    assert list(manifest["skipped"]) == [skipped_file] and skipped_file not in manifest["outputs"]
    entry = manifest["skipped"][skipped_file]
    assert entry["prompt"] == low_prompt and entry["grounding_score"] == pytest.approx(low, abs=1e-4)
    # a later run with a lower bar writes it, and it is no longer listed as skipped
    code, err = _predict(run_cli, photos, out, tiny_model_dir, "--skip-existing", "--min-score", "0")
    assert code == 0, err
    assert (out / skipped_file).is_file() and _manifest(out)["skipped"] == {}
    assert "kept 3 existing, skipped 0 below --min-score 0" in err


def test_min_score_one_writes_nothing(run_cli, tiny_model_dir, photos, scores, tmp_path):
    out = tmp_path / "out"
    code, err = _predict(run_cli, photos, out, tiny_model_dir, "--min-score", "1")
    assert code == 0, err
    assert list(out.glob("*.png")) == [] and sorted(_manifest(out)["skipped"]) == sorted(_file(*k) for k in scores)
    assert err.count("skipped ") == len(scores) + 1  # one line per file, and the summary


@pytest.mark.parametrize("value", ["1.5", "-0.1", "nan"])
def test_min_score_outside_zero_one_is_one_line_error(run_cli, tiny_model_dir, photos, tmp_path, value):
    code, err = _predict(run_cli, photos, tmp_path / "out", tiny_model_dir, "--min-score", value)
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and "--min-score must be a number in [0, 1]" in lines[0], err
    assert not (tmp_path / "out").exists()
    code, err = _predict(run_cli, photos, tmp_path / "out", tiny_model_dir, "--min-score", "high")
    assert code == 2 and "--min-score" in err and "invalid float value" in err
