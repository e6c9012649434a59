# Copyright 2026 The diffusers-matte authors. Licensed under the Apache License, Version 2.0.
"""benchmarks/benchmark_video.py on a tiny model and a short clip: it writes its table with its command."""

import sys
from pathlib import Path

import pytest

from diffusers_matte.pipelines import SoftGroundingMattingPipeline
from diffusers_matte.testing import get_dummy_components

pytest.importorskip("av", reason='video matting needs PyAV: pip install "diffusers-matte[video]"')

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import benchmark_video  # noqa: E402


def test_benchmark_writes_one_row_per_speed_and_variant(tmp_path):
    model = tmp_path / "model"
    SoftGroundingMattingPipeline(**get_dummy_components(), default_processing_resolution=32).save_pretrained(model)
    output = tmp_path / "video.md"
    argv = ["--model", str(model), "--seeds", "0", "--speeds", "0.02", "--seconds", "0.25", "--size", "32"]
    assert benchmark_video.main([*argv, "--output", str(output)]) == 0
    text = output.read_text()
    assert f"Command: `python benchmarks/benchmark_video.py {' '.join(argv)} --output {output}`" in text
    rows = [line for line in text.splitlines() if line.startswith("| 0.02 |")]
    assert [row.split(" | ")[1] for row in rows] == list(benchmark_video.VARIANTS)
    assert "- speed 0.02, against no smoothing: motion-gated SAD " in text
    with pytest.raises(SystemExit):  # an existing result is kept unless told otherwise
        benchmark_video.main([*argv, "--output", str(output)])
