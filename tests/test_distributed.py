"""Evaluation and batch matting across processes: 2 CPU processes (accelerate launch, gloo) give what 1 gives."""

import csv
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from diffusers_matte.batch import MattingFunction, load_matted_dataset, matte_dataset
from diffusers_matte.distributed import Processes, current_processes
from diffusers_matte.evaluation import load_protocol_dataset
from diffusers_matte.evaluation.records import merge_part_files, part_file, part_files, read_samples_csv

# Columns that are timings or the process's device: everything else must agree bit for bit.
TIMING = {"seconds", "device"}


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    """Three instances of the synthetic test split at 64 px (12 samples), saved for the command line."""
    import datasets

    cache = tmp_path_factory.mktemp("cache")
    dataset = load_protocol_dataset("synthetic", cache_dir=cache, synthetic_num_test=2, synthetic_image_size=64)
    dataset = dataset.select(range(3))
    folder = tmp_path_factory.mktemp("data") / "synthetic"
    datasets.DatasetDict({"test": dataset}).save_to_disk(str(folder))
    return dataset, folder


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    from diffusers_matte.pipelines import SoftGroundingMattingPipeline
    from diffusers_matte.testing import get_dummy_components

    folder = tmp_path_factory.mktemp("ckpt") / "tiny"
    SoftGroundingMattingPipeline(**get_dummy_components(seed=0)).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def pipe(checkpoint):
    import torch

    from diffusers_matte.cli.common import load_pipeline

    return load_pipeline(str(checkpoint), "cpu", torch.float32)


def free_port():
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def launch(script_or_module, *args, env=None, timeout=300):
    """`accelerate launch` with 2 CPU processes (gloo), offline; returns the completed process."""
    command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
               "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
               "--main_process_port", str(free_port()), *script_or_module, *args]  # fmt: skip
    full_env = {**os.environ, "ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1",
                "HF_DATASETS_OFFLINE": "1", "TQDM_DISABLE": "1", **(env or {})}  # fmt: skip
    return subprocess.run(command, capture_output=True, text=True, env=full_env, timeout=timeout)


def csv_rows(path):
    with open(path, newline="", encoding="utf-8") as handle:
        return [{k: v for k, v in row.items() if k not in TIMING} for row in csv.DictReader(handle)]


def without_timing(summary):
    """metrics.json without the timings and devices (which differ between runs by nature)."""
    summary = json.loads(json.dumps(summary))
    for key in ("device", "devices_in_csv"):
        summary.pop(key)
    for means in [summary["mean"], *summary["per_text_type"].values()]:
        means.pop("time_ms")
    return summary


def table_without_timing(text):
    lines = [line for line in text.splitlines() if not line.startswith("- device:")]
    return [line.rsplit("|", 2)[0] if line.startswith("|") else line for line in lines]


def test_split_gives_accelerates_contiguous_shares():
    class State:  # what Processes reads from accelerate's PartialState
        def __init__(self, index, size):
            self.process_index, self.num_processes = index, size

    for length in (0, 1, 5, 6, 7):
        for size in (1, 2, 3):
            shares = [Processes(State(k, size)).split(list(range(length))) for k in range(size)]
            assert [x for share in shares for x in share] == list(range(length))  # in order, each once
            assert max(map(len, shares)) - min(map(len, shares)) <= 1
            assert all(len(a) >= len(b) for a, b in zip(shares, shares[1:]))  # the first ones get the extra
    single = current_processes()
    assert not single.is_distributed and single.device is None and single.split([1, 2]) == [1, 2]
    assert single.gather_object("x") == ["x"] and single.broadcast_object(3) == 3


def test_part_files_merge_into_samples_csv_in_sample_order(tmp_path):
    from diffusers_matte.evaluation.records import CSV_COLUMNS, CsvAppender

    def row(instance, index):
        values = dict.fromkeys(CSV_COLUMNS, 0.1)
        values.update(instance_id=instance, text_index=index, text_type="t", image_id=instance, height=2, width=2)
        return {**values, "device": "cpu", "text": f"{instance} {index}"}

    order = [("a", 0), ("a", 1), ("b", 0), ("b", 1)]
    for index, keys in ((1, order[2:]), (0, order[:1])):
        appender = CsvAppender(part_file(tmp_path, index))
        appender.write([row(*key) for key in keys])
        appender.close()
    with open(part_file(tmp_path, 0), "a") as handle:  # a write cut off by an interruption
        handle.write("a,1,t,a,2")
    assert merge_part_files(tmp_path, order) and part_files(tmp_path) == []
    rows = read_samples_csv(tmp_path / "samples.csv")
    assert [(r["instance_id"], r["text_index"]) for r in rows] == [order[0], order[2], order[3]]
    assert not merge_part_files(tmp_path, order)


def direct_alphas(pipe, images, prompts):
    return list(pipe(images, prompt=prompts, processing_resolution=0, batch_size=8, output_type="np").alpha)


def test_matting_function_in_dataset_map_equals_the_pipeline(synthetic, pipe):
    from diffusers_matte.pipelines.soft_grounding.image_processor import alpha_to_pil

    dataset = synthetic[0].select_columns(["image", "texts"])
    dataset = dataset.add_column("prompt", [texts[0] for texts in dataset["texts"]])
    mapped = dataset.map(
        MattingFunction(pipe, output_type="np", processing_resolution=0), batched=True, batch_size=2
    ).with_format("numpy")
    images = list(dataset["image"])
    want = direct_alphas(pipe, images[:2], dataset["prompt"][:2]) + direct_alphas(
        pipe, images[2:], dataset["prompt"][2:]
    )
    for got, expected in zip(mapped["alpha"], want):
        np.testing.assert_array_equal(got, expected[..., 0])
    # Several prompts per row: a list of mattes per row, the image encoded once; PIL output is the 8-bit matte.
    several = matte_dataset(dataset.select(range(2)), pipe, prompts=[["the cat", "a dog"], ["a glass"]],
                            prompt_column="prompts", processing_resolution=0, batch_size=2)  # fmt: skip
    want = direct_alphas(pipe, images[:2], [["the cat", "a dog"], ["a glass"]])
    got = [alpha for row in several["alpha"] for alpha in row]
    assert [len(row) for row in several["alpha"]] == [2, 1]
    assert [np.asarray(a).tolist() for a in got] == [np.asarray(alpha_to_pil(w)).tolist() for w in want]
    with pytest.raises(ValueError, match="3 rows"):
        matte_dataset(dataset, pipe, prompts=["a", "b"], prompt_column="other")
    with pytest.raises(ValueError, match="no column 'prompt'"):
        matte_dataset(dataset.remove_columns("prompt"), pipe)


WORKER = textwrap.dedent("""
    import json, sys
    import torch
    from diffusers_matte import cli
    from diffusers_matte.batch import matte_dataset
    from diffusers_matte.cli import evaluate as evaluate_command
    from diffusers_matte.cli.common import load_pipeline
    from diffusers_matte.distributed import current_processes
    import datasets

    out, checkpoint, data = sys.argv[1], sys.argv[2], sys.argv[3]
    processes = current_processes()
    # Batch matting of 4 rows across the processes: gathered in memory, and saved one share per process.
    pipe = load_pipeline(checkpoint, "cpu", torch.float32)
    rows = datasets.load_from_disk(data)["test"].select_columns(["image", "texts"])
    rows = datasets.concatenate_datasets([rows, rows.select([0])])
    prompts = [texts[0] for texts in rows["texts"]]
    gathered = matte_dataset(rows, pipe, prompts, output_type="np", processing_resolution=0, batch_size=2)
    saved = matte_dataset(rows, pipe, prompts, processing_resolution=0, batch_size=2, output_dir=out + "/mattes")
    if processes.is_main_process:
        gathered.save_to_disk(out + "/gathered")
        json.dump({"num_processes": processes.num_processes, "rows": [len(gathered), len(saved)]},
                  open(out + "/batch.json", "w"))
    # predict over 3 images, split among the processes.
    images = out + "/images"
    assert cli.main(["predict", images, "--prompt", "the cat", "--prompt", "a dog", "--model", checkpoint,
                     "--output-dir", out + "/mattes-two", "--device", "cpu", "--dtype", "float32",
                     "--processing-resolution", "0"]) == 0
    # An evaluation that process 1 breaks off after its first batch.
    original = evaluate_command.pipeline_predictor
    def breaking_predictor(*args, **kwargs):
        predict, calls = original(*args, **kwargs), []
        def wrapped(images, prompts):
            calls.append(1)
            if processes.process_index == 1 and len(calls) == 2:
                raise RuntimeError("interrupted")
            return predict(images, prompts)
        return wrapped
    evaluate_command.pipeline_predictor = breaking_predictor
    sys.exit(cli.main(sys.argv[4:]))
    """)


def test_two_processes_give_what_one_gives_and_resume(synthetic, checkpoint, pipe, tmp_path, capsys):
    from diffusers_matte import cli
    from diffusers_matte.pipelines.soft_grounding.image_processor import alpha_to_pil

    dataset, data = synthetic
    argv = ["evaluate", "--model", str(checkpoint), "--protocol", "synthetic", "--data-dir", str(data),
            "--batch-size", "2", "--processing-resolution", "0", "--warmup", "0", "--device", "cpu",
            "--dtype", "float32", "--no-progress"]  # fmt: skip
    assert cli.main([*argv, "--output-dir", str(tmp_path / "one")]) == 0
    capsys.readouterr()

    (tmp_path / "images").mkdir()
    for k in range(3):
        dataset[k]["image"].convert("RGB").save(tmp_path / "images" / f"image{k}.png")
    predict = ["predict", str(tmp_path / "images"), "--prompt", "the cat", "--prompt", "a dog", "--model",
               str(checkpoint), "--device", "cpu", "--dtype", "float32", "--processing-resolution", "0"]  # fmt: skip
    assert cli.main([*predict, "--output-dir", str(tmp_path / "mattes-one")]) == 0
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    two = tmp_path / "two"
    broken = launch([str(script)], str(tmp_path), str(checkpoint), str(data), *argv, "--output-dir", str(two))
    assert broken.returncode != 0 and "interrupted" in broken.stderr, broken.stderr[-3000:]

    # Batch matting across the 2 processes equals the pipeline's own output, row for row.
    import datasets

    report = json.loads((tmp_path / "batch.json").read_text())
    assert report == {"num_processes": 2, "rows": [4, 4]}
    rows = datasets.concatenate_datasets([dataset, dataset.select([0])])
    images, prompts = list(rows["image"]), [texts[0] for texts in rows["texts"]]
    want = direct_alphas(pipe, images[:2], prompts[:2]) + direct_alphas(pipe, images[2:], prompts[2:])
    gathered = datasets.load_from_disk(str(tmp_path / "gathered")).with_format("numpy")
    assert list(gathered["prompt"]) == prompts
    for got, expected in zip(gathered["alpha"], want):
        np.testing.assert_array_equal(got, expected[..., 0])
    saved = load_matted_dataset(tmp_path / "mattes")
    assert [np.asarray(a).tolist() for a in saved["alpha"]] == [np.asarray(alpha_to_pil(w)).tolist() for w in want]

    # predict: the same files and the same list of outputs as one process.
    one, two_mattes = tmp_path / "mattes-one", tmp_path / "mattes-two"
    names = sorted(p.name for p in one.iterdir())
    assert len(names) == 7 and sorted(p.name for p in two_mattes.iterdir()) == names
    for name in names:
        assert (two_mattes / name).read_bytes() == (one / name).read_bytes(), name

    # The interrupted evaluation left each process's rows (process 1: its first batch only), and no summary.
    parts = part_files(two)
    assert [p.name for p in parts] == ["samples.process-00000.csv", "samples.process-00001.csv"]
    assert len(read_samples_csv(parts[1], trim=False)) == 2 and not (two / "metrics.json").exists()

    resumed = launch(["-m", "diffusers_matte"], *argv, "--output-dir", str(two))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert resumed.stdout.count("| all | 12 |") == 1  # printed once, by the main process
    assert part_files(two) == []
    assert csv_rows(two / "samples.csv") == csv_rows(tmp_path / "one" / "samples.csv")
    one_summary = json.loads((tmp_path / "one" / "metrics.json").read_text())
    two_summary = json.loads((two / "metrics.json").read_text())
    assert without_timing(two_summary) == without_timing(one_summary)
    one_table, two_table = ((d / "results.md").read_text() for d in (tmp_path / "one", two))
    assert table_without_timing(two_table) == table_without_timing(one_table)
    assert (two / "run.json").read_text() == (tmp_path / "one" / "run.json").read_text()
