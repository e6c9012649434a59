# Copyright 2026 The diffusers-matte authors. Licensed under the Apache License, Version 2.0.
"""benchmarks/benchmark_pipeline.py with tiny models (--quick): every section of its report, its refusals, and the
interleaved timing of units that share models."""

import sys
import time
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import benchmark_pipeline  # noqa: E402
from cost_measurement import time_interleaved  # noqa: E402


def test_quick_run_reports_ours_the_cascades_and_the_speed_options(tmp_path):
    output = tmp_path / "pipeline.md"
    argv = ["--quick", "--threads", "1", "--rounds", "1", "--batch_sizes", "1,2", "--speed_rounds", "1",
            "--speed_options", "channels_last,autocast,sdpa_math"]  # fmt: skip
    benchmark_pipeline.main([*argv, "--output", str(output)])
    text = output.read_text()
    assert f"python benchmarks/benchmark_pipeline.py {' '.join(argv)} --output {output}`" in text
    for section in ("## GMACs and parameters at batch 1", "### fp32, batch 1", "### fp32, batch 2",
                    "### bf16, batch 1", "### bf16, batch 2", "## Summary (batch 1)", "## CPU speed options"):  # fmt: skip
        assert section in text, section
    rows = [line.split(" | ")[0].lstrip("| ") for line in text.splitlines() if line.startswith("| ")]
    for version in ("sd21", "sd15"):
        for mode in ("default", "fast"):
            assert any(row.startswith(f"ours {version} {mode}") for row in rows), (version, mode)
    for cascade in benchmark_pipeline.CASCADES:
        assert cascade in rows
    for name in ("GroundingDINO-T", "SAM-H", "ViTMatte-B", "ViTMatte-S", "CLIPSeg", "refiner"):
        assert name in rows
    for variant in ("channels_last", "SDPA math backend", "fp32 weights, bf16 autocast"):
        assert f"UNet, fp32, {variant}" in rows or f"UNet, {variant}" in rows, variant
    assert "fast mode is" in text and "Matte Anything takes" in text
    with pytest.raises(SystemExit):  # an existing result is kept unless told otherwise
        benchmark_pipeline.main([*argv, "--output", str(output)])


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--versions", "sd15"], "needs sd21"),
        (["--modes", "fast"], "needs default"),
        (["--batch_sizes", "1,x"], "positive integers"),
        (["--speed_options", "tensorrt"], "--speed_options"),
        (["--device", "tpu"], "cpu or cuda"),
    ],
)
def test_bad_arguments_are_refused(tmp_path, capsys, argv, message):
    with pytest.raises(SystemExit):
        benchmark_pipeline.parse_args([*argv, "--output", str(tmp_path / "x.md")])
    assert message in capsys.readouterr().err


def test_units_sharing_a_model_keep_their_own_stage_times():
    """Two pipelines share their UNet: the hooks of one unit fire in the other's calls too, and each record must
    hold the stage times of its own call only (at most its wall time)."""

    class Slow(torch.nn.Module):
        def forward(self, x, wait: float):
            time.sleep(wait)
            return x

    shared = Slow()
    units = {
        name: benchmark_pipeline.TimedUnit(
            lambda wait=wait: shared(torch.ones(1), wait), {"m": shared}, {"m": ("parts.m",)}
        )
        for name, wait in (("short", 0.0), ("long", 0.05))
    }
    records, _ = time_interleaved(
        {name: unit.module for name, unit in units.items()},
        dict.fromkeys(units, ()),
        rounds=3,
        warmup=0,
        timed_modules={name: unit.stage_modules for name, unit in units.items()},
    )
    for record in records:
        assert record.module_times["parts.m"] <= record.measured.seconds, record


def test_unet_benchmark_times_the_latents_in_the_pipelines_layout():
    import benchmark_unet

    from diffusers_matte.models.unet_matte import MatteUNet2DConditionModel
    from diffusers_matte.testing import get_dummy_unet_init_dict

    unet = MatteUNet2DConditionModel(**get_dummy_unet_init_dict(), prediction_head="region")
    plain = benchmark_unet.unet_inputs(unet, torch.float32)
    last = benchmark_unet.unet_inputs(unet, torch.float32, channels_last=True)
    assert last[0].is_contiguous(memory_format=torch.channels_last) and plain[0].is_contiguous()
    for a, b in zip(plain, last):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert benchmark_unet.parse_args(["--output", "/nonexistent/unet.md"]).memory_format == "channels_last"


def test_attention_parts_times_every_piece_of_both_layers(tmp_path):
    import attention_parts

    output = tmp_path / "parts.md"
    attention_parts.main(
        ["--dtypes", "fp32", "--rounds", "1", "--repeats", "1", "--threads", "1", "--output", str(output)]
    )
    text = output.read_text()
    for grid in ("32x32", "16x16"):
        assert f"### {grid}, fp32" in text
    # the pieces' MACs add up to the layer counts of benchmark_unet (FlopCounterMode on the real layers)
    assert "0.597 of the MACs" in text and "0.818 of the MACs" in text
    assert text.count("phi, patchify + linear") == 2
    assert text.count("alternative: phi as a strided conv2d") == 2  # timed, not summed into a layer
    with pytest.raises(SystemExit):
        attention_parts.main(["--output", str(output)])  # exists: refused without --overwrite
