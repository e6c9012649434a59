"""The evaluation harness on a split with texts that name nothing: the four metrics on rows with a target, the
grounding score's AUROC and its no-target rejection at a fixed false rejection, and older records still read."""

import csv
import itertools
import json

import numpy as np
import pytest

from diffusers_matte.evaluation import (
    CSV_COLUMNS,
    FALSE_REJECTION_RATE,
    auroc,
    evaluate,
    format_markdown,
    load_protocol_dataset,
    pipeline_predictor,
    read_samples_csv,
    rejection_at,
)
from diffusers_matte.metrics import METRIC_NAMES, all_metrics


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    """Two synthetic test images at 64 px, each with a no-target row."""
    return load_protocol_dataset(
        "synthetic",
        cache_dir=tmp_path_factory.mktemp("cache"),
        synthetic_num_test=2,
        synthetic_image_size=64,
        synthetic_no_target_share=1.0,
    )


def _key(image: np.ndarray, text: str):
    return hash(image.tobytes()), text


def _flags(dataset):
    """{(image, text): has its row a target} (the texts of one synthetic image are all different)."""
    flags = {}
    for row in dataset:
        image = np.asarray(row["image"].convert("RGB"))
        flags.update({_key(image, text): row["has_target"] for text in row["texts"]})
    return flags


def scoring_predictor(flags, overrides=None):
    """Alpha 0.25 everywhere; score 0.8 for texts with a target, 0.3 for the others, unless ``overrides`` says."""

    def predict(images, prompts):
        keys = [_key(image, prompt) for image, prompt in zip(images, prompts)]
        scores = [(overrides or {}).get(key, 0.8 if flags[key] else 0.3) for key in keys]
        return {"alpha": [np.full(image.shape[:2], 0.25) for image in images], "grounding_score": scores}

    return predict


def run(predict, dataset, output_dir=None, **kwargs):
    return evaluate(predict, dataset, "synthetic", output_dir, progress=False, warmup=0, **kwargs)


def test_auroc_is_the_share_of_pairs_ordered_right_ties_counting_half():
    assert auroc([0.9, 0.8], [0.1, 0.2, 0.3]) == 1.0 and auroc([0.1], [0.9, 0.5]) == 0.0
    assert auroc([0.5, 0.5], [0.5]) == 0.5
    rng = np.random.default_rng(0)
    positive, negative = rng.integers(0, 5, 40) / 4, rng.integers(0, 4, 25) / 4  # many ties
    pairs = [1.0 if p > n else 0.5 if p == n else 0.0 for p, n in itertools.product(positive, negative)]
    assert auroc(positive, negative) == pytest.approx(np.mean(pairs), abs=1e-12)
    with pytest.raises(ValueError, match="both classes"):
        auroc([0.5], [])


def test_rejection_at_a_fixed_false_rejection_rate():
    targets = np.arange(1, 21) / 20  # 0.05 ... 1.0
    result = rejection_at(targets, [0.02, 0.08, 0.12, 0.5], 0.05)
    assert result == {"threshold": 0.1, "false_rejection_rate": 0.05, "no_target_rejection_rate": 0.5}
    assert rejection_at(targets, [0.0], 0.0)["threshold"] == 0.05  # rejects no target at all
    assert rejection_at([0.4, 0.4, 0.4], [0.4, 0.1], 0.5) == {
        "threshold": 0.4,
        "false_rejection_rate": 0.0,  # tied scores stay together
        "no_target_rejection_rate": 0.5,
    }
    with pytest.raises(ValueError, match="false_rejection_rate"):
        rejection_at(targets, [0.1], 1.0)


def test_metrics_on_rows_with_a_target_and_the_grounding_report(mixed, tmp_path):
    flags = _flags(mixed)
    absent_texts = [key for key, flag in flags.items() if not flag]
    assert absent_texts and FALSE_REJECTION_RATE == 0.05
    fooled = absent_texts[0]  # one no-target text scores like a target
    result = run(scoring_predictor(flags, {fooled: 0.8}), mixed, tmp_path, batch_size=5)
    summary = result.summary
    rows = read_samples_csv(tmp_path / "samples.csv")
    assert rows == result.rows and sum(not r["has_target"] for r in rows) == len(absent_texts)
    assert [r["has_target"] for r in rows] == [not r["instance_id"].endswith("_none") for r in rows]
    target_rows = [i for i in range(len(mixed)) if mixed[i]["has_target"]]
    expected = [
        all_metrics(np.full((64, 64), 0.25), np.asarray(mixed[i]["alpha"], np.float64) / 255)
        for i in target_rows
        for _ in mixed[i]["texts"]
    ]
    assert summary["mean"]["samples"] == len(expected) == sum(flags.values())
    for name in METRIC_NAMES:
        assert summary["mean"][name] == pytest.approx(np.mean([e[name] for e in expected]), rel=1e-12)
    assert sum(group["samples"] for group in summary["per_text_type"].values()) == len(expected)
    grounding = summary["grounding"]
    negatives = len(absent_texts)
    assert grounding["target_samples"] == len(expected) and grounding["no_target_samples"] == negatives
    assert grounding["scored_samples"] == len(rows) == summary["num_samples"]
    assert summary["num_instances"] == len(target_rows)  # a no-target row is no instance
    # every target (0.8) outscores every no-target (0.3) but one, which ties with all of them
    assert grounding["auroc"] == pytest.approx(1 - 0.5 / negatives)
    assert grounding["threshold"] == 0.8 and grounding["false_rejection_rate"] == 0.0
    assert grounding["no_target_rejection_rate"] == pytest.approx((negatives - 1) / negatives)
    assert grounding["target_false_rejection_rate"] == 0.05
    # the no-target rows' own metrics: the alpha predicted where there is nothing
    assert grounding["no_target_mean"]["sad"] == pytest.approx(0.25 * 64 * 64 / 1000)
    assert json.loads((tmp_path / "metrics.json").read_text()) == json.loads(json.dumps(summary))
    table = (tmp_path / "results.md").read_text()
    assert f"Texts that name nothing in the image: {negatives} samples, not in the table above" in table
    assert f"Grounding score: AUROC {grounding['auroc']:.3f}" in table and "rejects" in table


def test_without_no_target_rows_the_report_is_as_before(mixed):
    with_target = mixed.filter(lambda row: row["has_target"])
    summary = run(scoring_predictor(_flags(mixed)), with_target).summary
    assert summary["grounding"] is None
    assert "Grounding score" not in format_markdown(summary) and "name nothing" not in format_markdown(summary)


def test_a_predictor_without_scores_still_keeps_no_target_rows_out(mixed):
    plain = lambda images, prompts: [np.zeros(image.shape[:2]) for image in images]  # noqa: E731
    summary = run(plain, mixed, batch_size=4).summary
    assert summary["grounding"]["auroc"] is None and "threshold" not in summary["grounding"]
    assert summary["mean"]["samples"] == sum(_flags(mixed).values())
    assert "The predictor gives no grounding score." in format_markdown(summary)


def test_the_pipeline_predictors_rows_carry_its_scores(mixed, tiny_pipe):
    result = run(pipeline_predictor(tiny_pipe, processing_resolution=0), mixed, batch_size=4, max_samples=8)
    for row in result.rows:
        index = next(i for i in range(len(mixed)) if mixed[i]["instance_id"] == row["instance_id"])
        image = np.asarray(mixed[index]["image"].convert("RGB"))
        want = tiny_pipe(image, row["text"], processing_resolution=0).grounding_score[0]
        assert row["grounding_score"] == pytest.approx(float(want), abs=1e-6)


def test_bad_scores_are_reported(mixed):
    def predict(images, prompts):
        return {"alpha": [np.zeros(image.shape[:2]) for image in images], "grounding_score": [1.5] * len(images)}

    with pytest.raises(ValueError, match=r"one grounding score in \[0, 1\] per pair"):
        run(predict, mixed, max_samples=2)
    with pytest.raises(ValueError, match="must give 'alpha'"):
        run(lambda images, prompts: {"alphas": []}, mixed, max_samples=1)


def test_a_run_recorded_before_the_new_columns_resumes(mixed, tmp_path):
    flags = _flags(mixed)
    run(scoring_predictor(flags), mixed, tmp_path, max_samples=6)
    path = tmp_path / "samples.csv"
    with open(path, newline="", encoding="utf-8") as handle:
        old_rows = list(csv.DictReader(handle))
    old_columns = [c for c in CSV_COLUMNS if c not in ("has_target", "grounding_score")]
    with open(path, "w", newline="", encoding="utf-8") as handle:  # the file as the previous version wrote it
        writer = csv.DictWriter(handle, fieldnames=old_columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(old_rows)
    old = read_samples_csv(path)
    assert len(old) == 6 and all(r["has_target"] and r["grounding_score"] is None for r in old)
    calls = []

    def counting(images, prompts):
        calls.append(len(prompts))
        return scoring_predictor(flags)(images, prompts)

    resumed = run(counting, mixed, tmp_path)
    assert sum(calls) == len(resumed.rows) - 6  # the recorded rows are not predicted again
    with open(path, newline="", encoding="utf-8") as handle:
        assert next(csv.reader(handle)) == list(CSV_COLUMNS)  # the file was rewritten in the new columns
    assert [r["grounding_score"] for r in resumed.rows[:6]] == [None] * 6
    assert [r["text"] for r in read_samples_csv(path)[:6]] == [r["text"] for r in old]
    assert resumed.summary["grounding"]["scored_samples"] == len(resumed.rows) - 6


def test_the_evaluate_command_generates_no_target_rows_and_records_the_share(tmp_path, capsys):
    from diffusers_matte.cli import main

    common = ["evaluate", "--protocol", "synthetic", "--baseline", "zeros", "--synthetic-num-test", "4",
              "--synthetic-image-size", "64", "--cache-dir", str(tmp_path / "cache"), "--no-progress"]  # fmt: skip
    assert main([*common, "--output-dir", str(tmp_path / "plain")]) == 0
    assert main([*common, "--synthetic-no-target-share", "1", "--output-dir", str(tmp_path / "absent")]) == 0
    plain = json.loads((tmp_path / "plain" / "run.json").read_text())["data"]
    absent = json.loads((tmp_path / "absent" / "run.json").read_text())["data"]
    assert "no_target_share" not in plain and absent == plain + ", no_target_share=1"
    summaries = [json.loads((tmp_path / d / "metrics.json").read_text()) for d in ("plain", "absent")]
    assert summaries[0]["grounding"] is None and summaries[1]["grounding"] is not None
    # the rows with a target are the same in both runs, so are their metrics
    assert all(summaries[0]["mean"][name] == summaries[1]["mean"][name] for name in METRIC_NAMES)
