"""The evaluation harness on tiny data: numbers equal direct metric calls, per-type means, resume, refusal, CLI."""

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from diffusers_matte.evaluation import (
    CSV_COLUMNS,
    RunMismatchError,
    constant_predictor,
    evaluate,
    load_protocol_dataset,
    pipeline_predictor,
)
from diffusers_matte.metrics import METRIC_NAMES, all_metrics

sys.path.insert(0, str(Path(__file__).parent / "data"))
from matting_layouts import make_am2k, make_p3m, make_refmatte, make_rw100  # noqa: E402

SCRIPT = Path(__file__).resolve().parents[1] / "training" / "evaluate.py"
TYPES = ["keyword", "basic", "absolute", "relative"]


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("datasets_cache")


@pytest.fixture(scope="module")
def synthetic(cache_dir):
    """Three instances of the synthetic test split at 64 px: 12 (instance, expression) samples."""
    dataset = load_protocol_dataset(
        "synthetic",
        cache_dir=cache_dir,
        synthetic_num_test=2,
        synthetic_image_size=64,
    )
    return dataset.select(range(3))


@pytest.fixture(scope="module")
def pipe():
    from diffusers_matte.pipelines import SoftGroundingMattingPipeline
    from diffusers_matte.testing import get_dummy_components

    pipe = SoftGroundingMattingPipeline(**get_dummy_components(seed=0))
    pipe.set_progress_bar_config(disable=True)
    return pipe


def gt_of(row):
    return np.asarray(row["alpha"], dtype=np.float64) / 255.0


def prompt_predictor(calls=None):
    """A model whose constant output depends on the prompt, so that text types score differently."""

    def predict(images, prompts):
        if calls is not None:
            calls.append(len(prompts))
        return [np.full(image.shape[:2], (len(p) % 7) / 6.0, np.float32) for image, p in zip(images, prompts)]

    return predict


def run(predict, dataset, output_dir=None, **kwargs):
    kwargs.setdefault("progress", False)
    kwargs.setdefault("warmup", 0)
    return evaluate(predict, dataset, kwargs.pop("protocol", "synthetic"), output_dir, **kwargs)


def direct_metrics(pipe, row, batch_size):
    """all_metrics of the pipeline's own mattes of one row's four expressions (one call, one batch)."""
    image = np.asarray(row["image"].convert("RGB"))  # what the harness feeds
    alphas = pipe(
        image,
        prompt=row["texts"],
        processing_resolution=0,
        batch_size=batch_size,
        output_type="np",
    ).alpha
    return [all_metrics(np.clip(a[..., 0], 0, 1), gt_of(row)) for a in alphas]


def test_pipeline_numbers_equal_direct_metric_calls(synthetic, pipe, tmp_path):
    predict = pipeline_predictor(pipe, processing_resolution=0)
    result = run(
        predict,
        synthetic,
        tmp_path,
        batch_size=4,
        max_samples=4,
        device="cpu",
        dtype="float32",
    )
    assert [(r["instance_id"], r["text_index"]) for r in result.rows] == [
        (synthetic[0]["instance_id"], j) for j in range(4)
    ]
    expected = direct_metrics(pipe, synthetic[0], batch_size=4)
    for got, want in zip(result.rows, expected):
        assert {k: got[k] for k in METRIC_NAMES} == pytest.approx(want, rel=1e-12, abs=1e-15)
    summary = result.summary
    for name in METRIC_NAMES:
        want = np.mean([e[name] for e in expected])
        assert summary["mean"][name] == pytest.approx(want, rel=1e-12)
        for t, kind in enumerate(TYPES):
            per_type = summary["per_text_type"][kind]
            assert per_type["samples"] == 1
            assert per_type[name] == pytest.approx(expected[t][name], rel=1e-12)
    assert summary["mean"]["time_ms"] > 0 and summary["device"] == "cpu"
    assert summary["num_instances"] == 1 and summary["num_target_samples"] == 4
    assert summary["complete"]


def test_pipeline_batches_mixing_images(synthetic, pipe):
    """Batches of 3 mix the texts of two images: each pair still gets its own image's matte."""
    predict = pipeline_predictor(pipe, processing_resolution=0)
    rows = run(predict, synthetic, batch_size=3, max_samples=8).rows
    expected = direct_metrics(pipe, synthetic[0], 4) + direct_metrics(pipe, synthetic[1], 4)
    for got, want in zip(rows, expected):
        # Other batch compositions change float rounding of the convolutions (~1e-9 relative), nothing more.
        assert {k: got[k] for k in METRIC_NAMES} == pytest.approx(want, rel=1e-6, abs=1e-9)


def test_per_type_means_and_files(synthetic, tmp_path):
    result = run(prompt_predictor(), synthetic, tmp_path, batch_size=3)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "metrics.json",
        "results.md",
        "run.json",
        "samples.csv",
    ]
    by_type = {kind: [] for kind in TYPES}
    for i in range(len(synthetic)):
        row = synthetic[i]
        for text, kind in zip(row["texts"], row["text_types"]):
            pred = np.full((64, 64), (len(text) % 7) / 6.0, np.float32)
            by_type[kind].append(all_metrics(pred, gt_of(row)))
    summary = json.loads((tmp_path / "metrics.json").read_text())
    assert summary == json.loads(json.dumps(result.summary))
    assert list(summary["per_text_type"]) == TYPES and summary["num_samples"] == 12
    everything = [m for group in by_type.values() for m in group]
    for name in METRIC_NAMES:
        assert summary["mean"][name] == pytest.approx(np.mean([m[name] for m in everything]), rel=1e-12)
        for kind in TYPES:
            want = np.mean([m[name] for m in by_type[kind]])
            assert summary["per_text_type"][kind][name] == pytest.approx(want, rel=1e-12)
    assert len({summary["per_text_type"][k]["sad"] for k in TYPES}) > 1  # the types do differ here
    table = (tmp_path / "results.md").read_text()
    assert "| SAD (/1e3) | MSE (raw) | GRAD (/1e3) | CONN (/1e3) | time (ms/sample) |" in table
    for kind in ["all"] + TYPES:
        assert f"| {kind} |" in table
    header = (tmp_path / "samples.csv").read_text().splitlines()[0]
    assert header == ",".join(CSV_COLUMNS)


def test_resume_skips_scored_samples_and_gives_the_same_table(synthetic, tmp_path):
    calls = []
    run(prompt_predictor(calls), synthetic, tmp_path / "a", batch_size=2, max_samples=5)
    assert sum(calls) == 5 and len((tmp_path / "a" / "samples.csv").read_text().splitlines()) == 6
    with open(tmp_path / "a" / "samples.csv", "a") as handle:  # a write cut off by a crash
        handle.write("synthetic_test_0000001_1,1,basic,synthetic_test_0000001,64")
    calls.clear()
    resumed = run(prompt_predictor(calls), synthetic, tmp_path / "a", batch_size=2)
    assert sum(calls) == 12 - 5
    fresh = run(prompt_predictor(), synthetic, tmp_path / "b", batch_size=5)
    strip = lambda rows: [{k: v for k, v in r.items() if k != "seconds"} for r in rows]  # noqa: E731
    assert strip(resumed.rows) == strip(fresh.rows)
    for subset in ["mean"] + [f"per_text_type.{k}" for k in TYPES]:
        get = lambda s: (s[subset] if "." not in subset else s["per_text_type"][subset.split(".")[1]])  # noqa: E731
        a, b = get(resumed.summary), get(fresh.summary)
        assert {k: a[k] for k in ("samples",) + METRIC_NAMES} == {k: b[k] for k in ("samples",) + METRIC_NAMES}
    calls.clear()
    again = run(prompt_predictor(calls), synthetic, tmp_path / "a", batch_size=2)
    assert calls == [] and again.rows == resumed.rows


def test_refuses_results_of_another_run_unless_overwrite(synthetic, tmp_path):
    run(
        constant_predictor(0.0),
        synthetic,
        tmp_path,
        run_info={"model": "baseline:zeros"},
        max_samples=3,
    )
    with pytest.raises(RunMismatchError, match="model: 'baseline:zeros' there, 'baseline:ones' now"):
        run(
            constant_predictor(1.0),
            synthetic,
            tmp_path,
            run_info={"model": "baseline:ones"},
        )
    with pytest.raises(RunMismatchError, match="resolution"):
        run(
            constant_predictor(0.0),
            synthetic,
            tmp_path,
            run_info={"model": "baseline:zeros"},
            resolution=32,
        )
    result = run(
        constant_predictor(1.0),
        synthetic,
        tmp_path,
        run_info={"model": "baseline:ones"},
        overwrite=True,
    )
    assert len(result.rows) == 12 and json.loads((tmp_path / "run.json").read_text())["model"] == "baseline:ones"
    assert len((tmp_path / "samples.csv").read_text().splitlines()) == 13
    stray = tmp_path / "stray"
    stray.mkdir()
    (stray / "samples.csv").write_text("x\n")
    with pytest.raises(RunMismatchError, match="no run.json"):
        run(constant_predictor(0.0), synthetic, stray)


def test_constant_baselines(synthetic):
    zeros = run(constant_predictor(0.0), synthetic).rows
    ones = run(constant_predictor(1.0), synthetic).rows
    for i in range(len(synthetic)):
        gt = gt_of(synthetic[i])
        for r0, r1 in zip(zeros[4 * i : 4 * i + 4], ones[4 * i : 4 * i + 4]):
            assert r0["sad"] == pytest.approx(gt.sum() / 1000, rel=1e-5)
            assert r1["sad"] == pytest.approx((1 - gt).sum() / 1000, rel=1e-5)
            assert r0["mse"] == pytest.approx(np.mean(gt**2), rel=1e-5)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        constant_predictor(2.0)


def test_bad_predictor_outputs_are_reported(synthetic):
    with pytest.raises(ValueError, match=r"expected \(64, 64\)"):
        run(
            lambda images, prompts: [np.zeros((8, 8))] * len(images),
            synthetic,
            max_samples=1,
        )
    with pytest.raises(ValueError, match="returned 1 alphas for 2"):
        run(
            lambda images, prompts: [np.zeros((64, 64))],
            synthetic,
            max_samples=2,
            batch_size=2,
        )


@pytest.mark.parametrize("protocol", ["refmatte_test", "refmatte_rw100"])
def test_refmatte_protocols_score_at_512(protocol, tmp_path, cache_dir):
    if protocol == "refmatte_test":
        labels, mask_dir = (
            make_refmatte(tmp_path, "test"),
            tmp_path / "RefMatte" / "RefMatte" / "test" / "mask",
        )
    else:
        labels, mask_dir = make_rw100(tmp_path), tmp_path / "RefMatte_RW_100" / "mask"
    dataset = load_protocol_dataset(protocol, tmp_path, cache_dir=cache_dir)
    shapes = []

    def predict(images, prompts):
        shapes.extend(image.shape for image in images)
        return [np.full(image.shape[:2], 0.25) for image in images]

    result = run(predict, dataset, protocol=protocol, batch_size=4)
    assert set(shapes) == {(512, 512, 3)} and len(result.rows) == 4 * len(labels)
    assert list(result.summary["per_text_type"]) == [
        "text_0",
        "text_1",
        "text_2",
        "text_3",
    ]
    for row in result.rows:
        assert row["text"] == labels[row["instance_id"]]["expressions"][row["text_index"]]
        mask = Image.open(mask_dir / f"{row['instance_id']}.png").resize((512, 512), Image.BILINEAR)
        want = all_metrics(np.full((512, 512), 0.25), np.asarray(mask, np.float64) / 255)
        assert {k: row[k] for k in METRIC_NAMES} == pytest.approx(want, rel=1e-12)
    named = run(
        predict,
        dataset,
        protocol=protocol,
        batch_size=4,
        text_type_names=TYPES,
        max_samples=4,
    )
    assert [r["text_type"] for r in named.rows] == TYPES


@pytest.mark.parametrize("protocol", ["am2k", "p3m_500_np"])
def test_caption_protocols_score_at_full_resolution(protocol, tmp_path, cache_dir):
    (make_am2k if protocol == "am2k" else make_p3m)(tmp_path)
    folder = {
        "am2k": "AM-2k/validation/original",
        "p3m_500_np": "P3M-10k/validation/P3M-500-NP/original_image",
    }
    stems = sorted(p.stem for p in (tmp_path / folder[protocol]).iterdir())
    captions = tmp_path / "captions.json"
    captions.write_text(json.dumps({s: f"the subject of {s}" for s in stems}))
    with pytest.raises(ValueError, match="needs `captions_file`"):
        load_protocol_dataset(protocol, tmp_path, cache_dir=cache_dir)
    dataset = load_protocol_dataset(protocol, tmp_path, captions, cache_dir=cache_dir)
    result = run(constant_predictor(0.0), dataset, protocol=protocol)
    assert [(r["instance_id"], r["text"]) for r in result.rows] == [(s, f"the subject of {s}") for s in stems]
    assert {(r["height"], r["width"]) for r in result.rows} == {(16, 24)}
    assert list(result.summary["per_text_type"]) == ["caption"]


def load_script():
    spec = importlib.util.spec_from_file_location("evaluate_script", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_script_baseline_and_checkpoint(synthetic, pipe, tmp_path, capsys):
    import datasets

    data = tmp_path / "data"
    datasets.DatasetDict({"test": synthetic}).save_to_disk(str(data))
    script = load_script()
    common = ["--protocol", "synthetic", "--data_dir", str(data), "--no-progress"]
    assert script.main(["--baseline", "zeros", "--output-dir", str(tmp_path / "zeros"), *common]) == 0
    out = capsys.readouterr().out
    assert "| all | 12 |" in out and "baseline:zeros" in out
    summary = json.loads((tmp_path / "zeros" / "metrics.json").read_text())
    direct = run(constant_predictor(0.0), synthetic).summary["mean"]
    assert {k: summary["mean"][k] for k in METRIC_NAMES} == {k: direct[k] for k in METRIC_NAMES}
    # Another model into the same folder: refused with one line, exit code 2.
    assert script.main(["--baseline", "ones", "--output-dir", str(tmp_path / "zeros"), *common]) == 2
    assert "different run" in capsys.readouterr().err

    pipe.save_pretrained(tmp_path / "ckpt")
    args = ["--model", str(tmp_path / "ckpt"), "--output_dir", str(tmp_path / "model"), "--max_samples", "2",
            "--batch_size", "2", "--warmup", "0", "--device", "cpu", "--dtype", "float32", "--processing_resolution", "0", *common]  # fmt: skip
    assert script.main(args) == 0
    summary = json.loads((tmp_path / "model" / "metrics.json").read_text())
    assert summary["device"] == "cpu" and summary["run"]["dtype"] == "float32"
    assert summary["run"]["model"] == str((tmp_path / "ckpt").resolve()) and summary["num_samples"] == 2
    assert len(summary["run"]["model_fingerprint"]) == 16
    row = synthetic[0]
    image = np.asarray(row["image"].convert("RGB"))
    alphas = pipe(
        image,
        prompt=row["texts"][:2],
        processing_resolution=0,
        batch_size=2,
        output_type="np",
    ).alpha
    want = [all_metrics(np.clip(a[..., 0], 0, 1), gt_of(row))["sad"] for a in alphas]
    assert summary["mean"]["sad"] == pytest.approx(np.mean(want), rel=1e-6)


def test_cli_registration_resolution_override_and_usage_errors(synthetic, tmp_path, capsys):
    """How `diffusers-matte evaluate` registers: a subparser filled by add_evaluate_arguments, run_evaluate."""
    import argparse

    import datasets

    from diffusers_matte.cli import UsageError
    from diffusers_matte.cli.evaluate import add_evaluate_arguments, run_evaluate

    parser = argparse.ArgumentParser()
    subparsers = parser.add_subparsers(dest="command")
    add_evaluate_arguments(subparsers.add_parser("evaluate")).set_defaults(run=run_evaluate)
    data = tmp_path / "data"
    datasets.DatasetDict({"test": synthetic}).save_to_disk(str(data))
    argv = [
        "evaluate",
        "--baseline",
        "ones",
        "--protocol",
        "synthetic",
        "--data-dir",
        str(data),
        "--no-progress",
    ]
    args = parser.parse_args([*argv, "--output-dir", str(tmp_path / "out"), "--resolution", "32"])
    assert args.run(args) == 0
    rows = (tmp_path / "out" / "samples.csv").read_text().splitlines()[1:]
    assert len(rows) == 12 and {tuple(r.split(",")[4:6]) for r in rows} == {("32", "32")}
    assert "| all | 12 |" in capsys.readouterr().out
    for bad, message in (
        (["--batch-size", "0"], "positive"),
        (["--resolution", "-1"], "--resolution"),
        (["--captions-file", str(data)], "captions_file"),
    ):
        args = parser.parse_args([*argv, "--output-dir", str(tmp_path / "bad"), *bad])
        with pytest.raises(UsageError, match=message):
            args.run(args)
    args = parser.parse_args(["evaluate", "--baseline", "ones", "--protocol", "refmatte_test", "--output-dir",
                              str(tmp_path / "bad")])  # fmt: skip
    with pytest.raises(UsageError, match="needs `data_dir`"):
        args.run(args)


def test_checkpoint_fingerprint_tells_retrained_weights_apart(tmp_path):
    import os

    from diffusers_matte.cli.evaluate import checkpoint_fingerprint

    (tmp_path / "unet").mkdir()
    (tmp_path / "model_index.json").write_text('{"unet": ["diffusers_matte", "X"]}')
    weights = tmp_path / "unet" / "model.safetensors"
    weights.write_bytes(b"0" * 10)
    os.utime(weights, ns=(1, 1))
    first = checkpoint_fingerprint(tmp_path)
    assert checkpoint_fingerprint(tmp_path) == first
    weights.write_bytes(b"1" * 10)  # re-trained: same size, new time
    os.utime(weights, ns=(2, 2))
    second = checkpoint_fingerprint(tmp_path)
    (tmp_path / "model_index.json").write_text('{"unet": ["diffusers_matte", "Y"]}')
    assert len({first, second, checkpoint_fingerprint(tmp_path)}) == 3


def test_metric_workers_give_the_same_rows(synthetic, tmp_path):
    inline = run(prompt_predictor(), synthetic, batch_size=3).rows
    pooled = run(prompt_predictor(), synthetic, tmp_path, batch_size=3, metric_workers=2)
    strip = lambda rows: [{k: v for k, v in r.items() if k != "seconds"} for r in rows]  # noqa: E731
    assert strip(pooled.rows) == strip(inline)
    assert len((tmp_path / "samples.csv").read_text().splitlines()) == 13
    with pytest.raises(ValueError, match="metric_workers"):
        run(prompt_predictor(), synthetic, metric_workers=-1)
