"""Training never loses or mixes runs: the output folder, LoRA resumes, pruning, the step log, Hub and tracker
checks before training, and what `--push_to_hub` uploads."""

import argparse
import json
import shutil
from pathlib import Path

import pytest
import torch
from test_training_scripts import base_model, read_log, run  # noqa: F401 (base_model is a fixture)

from diffusers_matte import training_loop, training_utils
from diffusers_matte.pipelines import SoftGroundingMattingPipeline
from diffusers_matte.testing import get_dummy_components

TEACHER = ["--max_train_steps", 4, "--checkpointing_steps", 2]


class Interrupted(Exception):
    pass


def _die_at(step, monkeypatch, before_saving=True):
    """Kill the run at the checkpoint of `step`: before it is written, or after it is written but before pruning."""
    save = training_utils.save_checkpoint
    prune = training_utils.prune_checkpoints

    def save_or_die(accelerator, output_dir, global_step, *args, **kwargs):
        if global_step == step and before_saving:
            raise Interrupted
        return save(accelerator, output_dir, global_step, *args, **kwargs)

    def prune_or_die(output_dir, limit, keep=None):
        latest = training_utils.get_latest_checkpoint(output_dir)
        if latest is not None and latest.name == f"checkpoint-{step}":
            raise Interrupted
        return prune(output_dir, limit, keep)

    monkeypatch.setattr(training_utils, "save_checkpoint", save_or_die)
    if not before_saving:
        monkeypatch.setattr(training_utils, "prune_checkpoints", prune_or_die)


def test_an_existing_output_dir_is_refused_unless_resuming_or_overwriting(base_model, tmp_path):  # noqa: F811
    out = tmp_path / "teacher"
    args = ["--pretrained_model_name_or_path", base_model, "--output_dir", out, *TEACHER]
    run("train_teacher", *args)
    assert [p.name for p in training_utils.list_checkpoints(out)] == ["checkpoint-2", "checkpoint-4"]
    with pytest.raises(
        ValueError, match="already holds files .*--resume_from_checkpoint latest.*--overwrite_output_dir"
    ):
        run("train_teacher", *args)
    (out / "note.txt").write_text("not the run's")
    run("train_teacher", *args[:-4], "--max_train_steps", 2, "--checkpointing_steps", 1, "--overwrite_output_dir")
    assert [r["step"] for r in read_log(out)] == [1, 2]  # the old run's lines are gone, not mixed in
    assert [p.name for p in training_utils.list_checkpoints(out)] == ["checkpoint-1", "checkpoint-2"]
    assert (out / "note.txt").read_text() == "not the run's"  # only what training writes is deleted
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="is a file"):
        run("train_teacher", *args[:3], tmp_path / "file")


def test_a_resumed_log_reads_like_the_uninterrupted_run(base_model, tmp_path, monkeypatch):  # noqa: F811
    args = ["--pretrained_model_name_or_path", base_model, *TEACHER]
    run("train_teacher", *args, "--output_dir", tmp_path / "full")
    _die_at(4, monkeypatch)  # step 4 is logged, then the run dies before its checkpoint
    with pytest.raises(Interrupted):
        run("train_teacher", *args, "--output_dir", tmp_path / "cut")
    assert [r["step"] for r in read_log(tmp_path / "cut")] == [1, 2, 3, 4]
    monkeypatch.undo()
    with (tmp_path / "cut" / "train_log.jsonl").open("a") as log:
        log.write('{"step": 5, "lo')  # a line cut short by the kill
    run("train_teacher", *args, "--output_dir", tmp_path / "cut", "--resume_from_checkpoint", "latest")
    full, cut = read_log(tmp_path / "full"), read_log(tmp_path / "cut")
    assert [r["step"] for r in cut] == [1, 2, 3, 4]  # today: 1, 2, 3, 4, 3, 4
    assert [r["loss"] for r in cut] == pytest.approx([r["loss"] for r in full], rel=1e-6)


def test_a_kill_between_save_and_prune_is_pruned_at_the_next_start(base_model, tmp_path, monkeypatch):  # noqa: F811
    args = ["--pretrained_model_name_or_path", base_model, "--output_dir", tmp_path, *TEACHER]
    args += ["--checkpoints_total_limit", 1]
    _die_at(4, monkeypatch, before_saving=False)  # the last checkpoint is in place, the old one not yet pruned
    with pytest.raises(Interrupted):
        run("train_teacher", *args)
    monkeypatch.undo()
    assert [p.name for p in training_utils.list_checkpoints(tmp_path)] == ["checkpoint-2", "checkpoint-4"]
    run("train_teacher", *args, "--resume_from_checkpoint", "latest")  # nothing left to train: no save, no prune
    assert [p.name for p in training_utils.list_checkpoints(tmp_path)] == ["checkpoint-4"]


def test_lora_teacher_resumes_exactly_and_saves_its_adapter(base_model, tmp_path, monkeypatch):  # noqa: F811
    args = ["--pretrained_model_name_or_path", base_model, *TEACHER, "--use_lora", "--lora_rank", 2]
    run("train_teacher", *args, "--output_dir", tmp_path / "full")
    _die_at(4, monkeypatch)
    with pytest.raises(Interrupted):
        run("train_teacher", *args, "--output_dir", tmp_path / "cut")
    monkeypatch.undo()
    run("train_teacher", *args, "--output_dir", tmp_path / "cut", "--resume_from_checkpoint", "latest")
    full, cut = read_log(tmp_path / "full"), read_log(tmp_path / "cut")
    assert [r["loss"] for r in cut] == pytest.approx([r["loss"] for r in full], rel=1e-6)
    assert [r["lr"] for r in cut] == [r["lr"] for r in full]

    from diffusers_matte.models.unet_matte import MatteUNet2DConditionModel

    adapter = tmp_path / "cut" / "unet_lora"
    assert sorted(p.name for p in adapter.iterdir()) == ["adapter_config.json", "adapter_model.safetensors"]
    assert json.loads((adapter / "adapter_config.json").read_text())["r"] == 2
    fused = MatteUNet2DConditionModel.from_pretrained(tmp_path / "cut", subfolder="unet").eval()
    # the base teacher + the adapter + the region head (trained in full, kept in unet/) = the fused teacher
    rebuilt = MatteUNet2DConditionModel.from_pretrained(base_model, subfolder="unet", prediction_head="region")
    rebuilt.conv_out.load_state_dict(fused.conv_out.state_dict())
    rebuilt.load_lora_adapter(str(adapter), weight_name="adapter_model.safetensors", prefix=None)
    rebuilt.eval()
    latents = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    text = torch.randn(1, 77, fused.config.cross_attention_dim, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = fused(latents, fused.config.prediction_timestep, text).sample
        torch.testing.assert_close(rebuilt(latents, fused.config.prediction_timestep, text).sample, expected)


def test_hub_and_tracker_problems_stop_the_run_before_training(base_model, tmp_path, monkeypatch):  # noqa: F811
    import importlib.util

    import huggingface_hub

    def trained(*args, **kwargs):
        raise AssertionError("training started")

    monkeypatch.setattr(training_loop, "train", trained)
    monkeypatch.setattr(training_loop.FrozenEncoders, "from_pretrained", trained)
    args = ["--pretrained_model_name_or_path", base_model, "--output_dir", tmp_path / "out", "--push_to_hub"]
    monkeypatch.setattr(huggingface_hub, "get_token", lambda: None)
    with pytest.raises(ValueError, match="--push_to_hub needs a Hugging Face token"):
        run("train_teacher", *args)
    monkeypatch.setattr(huggingface_hub, "get_token", lambda: "hf_test")

    def offline(*args, **kwargs):
        raise huggingface_hub.errors.OfflineModeIsEnabled("Cannot reach the Hub: offline mode is enabled.")

    monkeypatch.setattr(huggingface_hub, "create_repo", offline)
    with pytest.raises(ValueError, match="--push_to_hub: cannot create or reach the repository 'out': Cannot reach"):
        run("train_teacher", *args)

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else find_spec(name, *a))
    with pytest.raises(ValueError, match="--report_to wandb needs the wandb package"):
        run("train_teacher", *args[:4], "--report_to", "wandb")
    with pytest.raises(ValueError, match="--report_to: expected one of"):
        training_loop.check_tracker("wandbb")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_push_to_hub_uploads_the_layout_that_loads_with_remote_code(tmp_path, monkeypatch):
    import huggingface_hub
    from diffusers import DiffusionPipeline

    uploaded = tmp_path / "uploaded"

    def upload_folder(repo_id, folder_path, **kwargs):
        shutil.copytree(folder_path, uploaded)
        return f"https://huggingface.co/{repo_id}/commit/0"

    monkeypatch.setattr(huggingface_hub, "upload_folder", upload_folder)
    out = tmp_path / "out"
    pipe = SoftGroundingMattingPipeline(**get_dummy_components(), default_processing_resolution=32)
    pipe.save_pretrained(out)
    for name in ("checkpoint-2", "logs"):
        (out / name).mkdir()
    (out / "train_log.jsonl").write_text("{}\n")
    args = argparse.Namespace(output_dir=str(out), hub_repo_id="me/matte", hub_token=None, logging_dir="logs")
    training_loop.push_outputs(args, {"": pipe})
    index = json.loads((uploaded / "model_index.json").read_text())
    assert index["_class_name"] == ["pipeline_soft_grounding", "SoftGroundingMattingPipeline"]
    assert (uploaded / "unet" / "unet_matte.py").is_file()
    assert not {"checkpoint-2", "logs", "train_log.jsonl"} & {p.name for p in uploaded.iterdir()}
    loaded = DiffusionPipeline.from_pretrained(uploaded, trust_remote_code=True)
    image = torch.rand(1, 3, 24, 24, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(loaded(image, "a dog").alpha, pipe(image, "a dog").alpha)
    # a stage that trains components uploads each with its module next to its weights
    shutil.rmtree(uploaded)
    teacher = tmp_path / "teacher"
    pipe.unet.save_pretrained(teacher / "unet")
    training_loop.push_outputs(argparse.Namespace(**{**vars(args), "output_dir": str(teacher)}), {"unet": pipe.unet})
    assert {"unet_matte.py", "config.json"} <= {p.name for p in (uploaded / "unet").iterdir()}
    assert Path(uploaded / "unet" / "unet_matte.py").read_text().startswith("# Copyright")
