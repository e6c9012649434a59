"""The sparse up-sampler's training stage (training/train_refiner.py) on a tiny stage-3 pipeline."""

import json

import pytest
import torch
from test_training_scripts import COMMON, load_script, read_log, run

from diffusers_matte import SoftGroundingMattingPipeline
from diffusers_matte.models.sparse_refiner import SparseMatteRefiner
from diffusers_matte.testing import get_dummy_components


@pytest.fixture(scope="module")
def stage3(tmp_path_factory):
    """A stage-3 output: a complete pipeline folder without a refiner (tiny random models)."""
    path = tmp_path_factory.mktemp("stage3")
    SoftGroundingMattingPipeline(**get_dummy_components()).save_pretrained(path)
    return path


def _args(stage3, out, tmp_path):
    config = tmp_path / "refiner.json"
    config.write_text(json.dumps(dict(hidden_channels=[4])))
    return [
        "--pretrained_model_name_or_path", stage3, "--pipeline_model_name_or_path", stage3,
        "--output_dir", out, "--resolution", 64, "--processing_resolution", 32, "--refiner_config", config,
    ]  # fmt: skip


def test_refiner_stage_trains_and_writes_a_pipeline_with_refiner(stage3, tmp_path):
    initial, trained = {}, []

    def remember(module, inputs):  # the weights before the first optimiser step, and the module trained
        if isinstance(module, SparseMatteRefiner) and not trained:
            trained.append(module)
            initial.update({k: v.clone() for k, v in module.state_dict().items()})

    handle = torch.nn.modules.module.register_module_forward_pre_hook(remember)
    try:
        run("train_refiner", *_args(stage3, tmp_path / "out", tmp_path), "--max_train_steps", 2)  # fmt: skip
    finally:
        handle.remove()

    log = read_log(tmp_path / "out")
    assert [row["step"] for row in log] == [1, 2]
    assert all(row["loss"] > 0 and row["loss_laplacian"] > 0 for row in log)
    final = trained[0].state_dict()
    for name, value in initial.items():
        if name.endswith("weight"):
            assert not torch.equal(value, final[name]), name

    pipe = SoftGroundingMattingPipeline.from_pretrained(tmp_path / "out")
    assert isinstance(pipe.refiner, SparseMatteRefiner)
    for name, value in pipe.refiner.state_dict().items():
        torch.testing.assert_close(value, final[name], rtol=0, atol=0)
    # Everything else is the frozen stage-3 pipeline.
    before = SoftGroundingMattingPipeline.from_pretrained(stage3)
    for name, value in before.matting_decoder.state_dict().items():
        torch.testing.assert_close(pipe.matting_decoder.state_dict()[name], value, rtol=0, atol=0)

    calls = []
    pipe.refiner.register_forward_hook(lambda m, i, o: calls.append(o.sizes))
    alpha = pipe(torch.rand(1, 3, 64, 80), "the red ball", processing_resolution=32).alpha
    assert alpha.shape == (1, 64, 80, 1) and ((alpha >= 0) & (alpha <= 1)).all()
    assert calls and calls[0][-1] == (64, 80)


def test_refiner_stage_refuses_bad_arguments(stage3, tmp_path):
    script = load_script("train_refiner")
    args = [*COMMON, *map(str, _args(stage3, tmp_path / "out", tmp_path))]
    with pytest.raises(ValueError, match="--processing_resolution"):
        script.parse_args([*args, "--processing_resolution", "128"])
    with pytest.raises(ValueError, match="--output_dir"):
        script.parse_args([*args, "--output_dir", str(stage3)])


def test_refiner_stage_under_bf16_mixed_precision(stage3, tmp_path):
    run("train_refiner", *_args(stage3, tmp_path / "out", tmp_path), "--max_train_steps", 1,
        "--mixed_precision", "bf16")  # fmt: skip
    assert read_log(tmp_path / "out")[0]["loss"] > 0
    pipe = SoftGroundingMattingPipeline.from_pretrained(tmp_path / "out")
    assert pipe.refiner.dtype == pipe.matting_decoder.dtype == torch.float32


def test_trained_refiner_beats_bilinear_upsampling(stage3, tmp_path):
    """The first logged loss is that of the untrained refiner, i.e. bilinear up-sampling of the decoder's alpha."""
    run("train_refiner", *_args(stage3, tmp_path / "out", tmp_path), "--max_train_steps", 120,
        "--learning_rate", 1e-3, "--synthetic_num_train", 20, "--checkpointing_steps", 1000)  # fmt: skip
    losses = [row["loss"] for row in read_log(tmp_path / "out")]
    assert sum(losses[-20:]) / 20 < 0.5 * losses[0]


def test_refiner_stage_survives_a_batch_without_uncertain_pixels(stage3, tmp_path):
    config = tmp_path / "narrow.json"  # no alpha value falls in this band: the refiner convolves nothing
    config.write_text(json.dumps(dict(hidden_channels=[4], uncertain_low=1 - 2e-7, uncertain_high=1 - 1e-7)))
    run("train_refiner", *_args(stage3, tmp_path / "out", tmp_path), "--max_train_steps", 1,
        "--refiner_config", config)  # fmt: skip
    assert read_log(tmp_path / "out")[0]["loss"] > 0
