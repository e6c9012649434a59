"""`--eval_protocol`: the matting decoder's and refiner's prediction scored during training by the evaluation
harness (SAD, MSE, GRAD, CONN) on a held-out split, here the generated synthetic test split with tiny models."""

import json

import numpy as np
import pytest
import torch
from accelerate import Accelerator
from accelerate.state import AcceleratorState, GradientState, PartialState
from PIL import Image
from test_training_scripts import COMMON, load_script

from diffusers_matte import SoftGroundingMattingPipeline
from diffusers_matte.evaluation import constant_predictor, evaluate
from diffusers_matte.pipelines.soft_grounding.image_processor import alpha_to_pil
from diffusers_matte.testing import get_dummy_components
from diffusers_matte.training_loop import load_train_rows
from diffusers_matte.training_loop.validation import EVALUATION_DIR, VALIDATION_DIR, log_evaluation, log_step

RESOLUTION = 32


def decoder_args(tmp_path, *extra):
    """The matting decoder stage's parsed arguments, scoring the synthetic protocol on 2 generated test images."""
    script = load_script("train_matting_decoder")
    return script.parse_args(
        [*COMMON, "--pretrained_model_name_or_path", "unused", "--student_model_name_or_path", "unused",
         "--output_dir", str(tmp_path / "out"), "--dataset_cache_dir", str(tmp_path / "cache"),
         "--eval_protocol", "synthetic", "--synthetic_num_test", "2", *map(str, extra)]
    )  # fmt: skip


def accelerator_for(args, report_to=None) -> Accelerator:
    for state in (AcceleratorState, GradientState, PartialState):
        state._reset_state()
    accelerator = Accelerator(log_with=report_to, project_dir=args.output_dir)
    if report_to:
        accelerator.init_trackers("eval")
    return accelerator


def decoder_validate(pipe):
    """What the matting decoder stage's `validate` returns: the alpha of the pipeline with the trained decoder."""

    def validate(models, pixels, prompt):
        pipe.matting_decoder = models["matting_decoder"]
        return {"alpha": alpha_to_pil(pipe((pixels + 1) / 2, prompt, processing_resolution=RESOLUTION).alpha[0])}

    return validate


def constant_validate(value):
    def validate(models, pixels, prompt):
        return {"alpha": Image.new("L", pixels.shape[-2:][::-1], round(255 * value))}

    return validate


@pytest.mark.parametrize("value", [0.0, 1.0])
def test_the_metrics_are_the_harness_on_the_held_out_split(value, tmp_path):
    """A stage predicting a constant scores exactly what the harness gives the constant baseline, sample by
    sample, on the same split: the same samples, sizes and metrics."""
    args = decoder_args(tmp_path, "--eval_max_samples", 6)
    accelerator = accelerator_for(args)
    means = log_evaluation(args, accelerator, {}, {}, constant_validate(value), step=3)
    expected = evaluate(constant_predictor(value), args._eval_dataset, "synthetic", max_samples=6, progress=False)
    assert means == pytest.approx({k: expected.summary["mean"][k] for k in ("sad", "mse", "grad", "conn")})
    assert value == 1.0 or means["sad"] > 0  # the split has foreground: predicting nothing costs
    folder = tmp_path / "out" / EVALUATION_DIR / "step-3"
    summary = json.loads((folder / "metrics.json").read_text())
    assert summary["num_samples"] == 6 and summary["run"]["stage"] == "matting_decoder"
    assert (folder / "results.md").read_text().startswith("# Evaluation: synthetic")
    trained_on = {np.asarray(image).tobytes() for image in load_train_rows(args)["image"]}
    assert trained_on.isdisjoint(np.asarray(image).tobytes() for image in args._eval_dataset["image"])  # held out


def test_the_models_are_scored_as_averages_in_eval_mode_and_restored(tmp_path):
    from diffusers.training_utils import EMAModel

    pipe = SoftGroundingMattingPipeline(**get_dummy_components(), default_processing_resolution=RESOLUTION)
    pipe.set_progress_bar_config(disable=True)
    decoder = pipe.matting_decoder.train()
    noise = torch.Generator().manual_seed(0)
    with torch.no_grad():  # a decoder whose weights show in its alpha (its head starts at zero)
        for p in decoder.parameters():
            p.add_(torch.randn(p.shape, generator=noise))
    weights = {k: v.clone() for k, v in decoder.state_dict().items()}
    ema = EMAModel(list(decoder.parameters()))
    ema.shadow_params = [p + torch.randn(p.shape, generator=noise) for p in ema.shadow_params]  # unlike the weights
    args = decoder_args(tmp_path, "--eval_max_samples", 4)
    accelerator = accelerator_for(args, "tensorboard")
    rng = torch.get_rng_state()
    averaged = log_evaluation(args, accelerator, {"matting_decoder": decoder}, {"matting_decoder": ema},
                              decoder_validate(pipe), step=1)  # fmt: skip
    assert decoder.training and torch.equal(torch.get_rng_state(), rng)
    for name, value in decoder.state_dict().items():
        torch.testing.assert_close(value, weights[name], rtol=0, atol=0)
    plain = log_evaluation(args, accelerator, {"matting_decoder": decoder}, {}, decoder_validate(pipe), step=2)
    assert averaged != plain
    decoder.eval()
    expected = log_evaluation(args, accelerator, {"matting_decoder": decoder}, {}, decoder_validate(pipe), step=2)
    assert plain == expected  # scored in eval mode, whatever the training mode (BatchNorm)
    accelerator.end_training()
    events = b"".join(p.read_bytes() for p in (tmp_path / "out").rglob("events.out.tfevents*"))
    assert all(f"eval/{name}".encode() in events for name in ("sad", "mse", "grad", "conn"))


def test_each_report_runs_at_its_own_interval_and_both_at_the_end(tmp_path):
    image = tmp_path / "cat.png"
    Image.new("RGB", (20, 12), (200, 30, 30)).save(image)
    args = decoder_args(tmp_path, "--eval_max_samples", 2, "--eval_steps", 3, "--validation_steps", 2,
                        "--validation_image", image, "--validation_prompt", "the cat")  # fmt: skip
    accelerator = accelerator_for(args)
    for step in range(1, 6):
        log_step(args, accelerator, {}, {}, constant_validate(0.5), step)
    log_step(args, accelerator, {}, {}, constant_validate(0.5), 6, final=True)
    out = tmp_path / "out"
    assert sorted(p.name for p in (out / VALIDATION_DIR).iterdir()) == ["step-2", "step-4", "step-6"]
    assert sorted(p.name for p in (out / EVALUATION_DIR).iterdir()) == ["step-3", "step-6"]
    assert args.evaluation_summary["step"] == 6 and args.evaluation_summary["mse"] == pytest.approx(
        json.loads((out / EVALUATION_DIR / "step-6" / "metrics.json").read_text())["mean"]["mse"]
    )


def test_a_stage_without_an_alpha_is_refused(tmp_path):
    args = decoder_args(tmp_path, "--eval_max_samples", 1)
    region = {"region_map": Image.new("RGB", (RESOLUTION, RESOLUTION))}
    with pytest.raises(ValueError, match=r"scores an alpha; this stage predicts \['region_map'\]"):
        log_evaluation(args, accelerator_for(args), {}, {}, lambda models, pixels, prompt: region, step=1)


def test_eval_options_are_checked_before_anything_loads(tmp_path, capsys):
    with pytest.raises(SystemExit):  # the teacher and the student predict no alpha: they have no such option
        load_script("train_teacher").parse_args(
            [*COMMON, "--pretrained_model_name_or_path", "x", "--output_dir", str(tmp_path), "--eval_protocol",
             "synthetic"]
        )  # fmt: skip
    assert "unrecognized arguments: --eval_protocol" in capsys.readouterr().err
    with pytest.raises(ValueError, match="--eval_protocol refmatte_test needs --eval_data_dir"):
        decoder_args(tmp_path, "--eval_protocol", "refmatte_test")
    with pytest.raises(FileNotFoundError, match="--eval_data_dir .*nowhere"):
        decoder_args(tmp_path, "--eval_protocol", "refmatte_test", "--eval_data_dir", tmp_path / "nowhere")
    with pytest.raises(ValueError, match="--eval_protocol am2k needs one"):
        decoder_args(tmp_path, "--eval_protocol", "am2k", "--eval_data_dir", tmp_path)
    with pytest.raises(ValueError, match="--eval_protocol synthetic takes none"):
        decoder_args(tmp_path, "--eval_captions_file", tmp_path / "captions.json")
    with pytest.raises(ValueError, match="--eval_steps must be a positive integer"):
        decoder_args(tmp_path, "--eval_steps", 0)
    args = decoder_args(tmp_path)
    args.eval_protocol = None  # without --eval_protocol nothing is scored
    assert log_evaluation(args, accelerator_for(args), {}, {}, constant_validate(0.5), step=1) is None
    assert not (tmp_path / "out" / EVALUATION_DIR).exists()
