# Copyright 2026 The diffusers-matte authors. Licensed under the Apache License, Version 2.0.
"""Tests of diffusers_matte.training_utils: Table 4 schedule, checkpoints (atomic, pruned, resumable), hooks, cards."""

import json
import os
import shutil

import pytest
import torch
import yaml
from accelerate import Accelerator
from accelerate.utils import ProjectConfiguration, set_seed
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.loaders import PeftAdapterMixin
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

from diffusers_matte import training_utils
from diffusers_matte.training_utils import (
    CHECKPOINT_FILES,
    INCOMPLETE_PREFIX,
    TABLE4_STAGES,
    PolyMilestoneLambda,
    atomic_write_directory,
    checkpoint_problems,
    checkpoint_step,
    get_latest_checkpoint,
    get_optimizer,
    get_poly_milestone_scheduler,
    list_checkpoints,
    make_load_model_hook,
    make_save_model_hook,
    prune_checkpoints,
    register_checkpoint_hooks,
    remove_incomplete_checkpoints,
    resolve_resume_checkpoint,
    save_checkpoint,
    save_peft_adapter,
    write_model_card,
)

# ------------------------------------------------------------------------------------------------ schedule


def test_poly_milestone_lambda_follows_appendix_6_2():
    f = PolyMilestoneLambda(100, milestones=[30, 70], values=[0.5, 0.25])
    assert f(0) == 1.0
    assert f(10) == pytest.approx(0.9**0.9)
    assert f(29) == pytest.approx(0.71**0.9)
    assert f(30) == f(69) == 0.5  # "the learning rate is directly adjusted to the presented value"
    assert f(70) == f(100) == f(120) == 0.25
    plain = PolyMilestoneLambda(100)
    assert plain(50) == pytest.approx(0.5**0.9)
    assert plain(100) == plain(150) == 0.0


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(total_steps=0), "positive"),
        (dict(total_steps=10, milestones=[3], values=[0.5, 0.1]), "same length"),
        (
            dict(total_steps=10, milestones=[5, 3], values=[0.5, 0.1]),
            "strictly increasing",
        ),
        (dict(total_steps=10, milestones=[3], values=[-1.0]), "non-negative"),
    ],
)
def test_poly_milestone_lambda_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        PolyMilestoneLambda(**kwargs)


def test_table4_stages_are_consistent_schedules():
    assert set(TABLE4_STAGES) == {"teacher", "distill", "matting_decoder", "refiner"}
    for stage in TABLE4_STAGES.values():
        f = PolyMilestoneLambda(stage.max_train_steps, stage.lr_milestones, stage.lr_milestone_values)
        assert all(0 < m < stage.max_train_steps for m in stage.lr_milestones)
        # Each milestone lowers the learning rate below the poly value just before it (Table 4's values are drops).
        for milestone in stage.lr_milestones:
            assert f(milestone) < f(milestone - 1)


def test_optimizer_and_scheduler_step_the_learning_rate():
    parameter = nn.Parameter(torch.zeros(2))
    optimizer = get_optimizer([parameter], learning_rate=0.1)
    assert isinstance(optimizer, torch.optim.AdamW)
    assert optimizer.param_groups[0]["weight_decay"] == 0.01
    scheduler = get_poly_milestone_scheduler(optimizer, total_steps=10, milestones=[4], values=[0.2])
    lambda_ = PolyMilestoneLambda(10, [4], [0.2])
    rates = []
    for _ in range(6):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert rates == pytest.approx([0.1 * lambda_(step) for step in range(6)])


def test_scheduler_per_process_scaling_and_state_dict_round_trip():
    def make(num_processes):
        optimizer = get_optimizer([nn.Parameter(torch.zeros(1))], learning_rate=1.0)
        return optimizer, get_poly_milestone_scheduler(optimizer, 10, [4], [0.2], num_processes=num_processes)

    single_optimizer, single = make(1)
    double_optimizer, double = make(2)
    for _ in range(5):  # accelerate steps a prepared scheduler once per process
        single_optimizer.step()
        double_optimizer.step()
        single.step()
        double.step()
        double.step()
    assert double_optimizer.param_groups[0]["lr"] == single_optimizer.param_groups[0]["lr"] == 0.2

    resumed_optimizer, resumed = make(1)
    resumed_optimizer.param_groups[0]["lr"] = 123.0
    state = single.state_dict()
    assert state["lr_lambdas"][0]["milestones"] == [4]  # the callable's state is saved
    resumed.load_state_dict(state)
    resumed_optimizer.load_state_dict(single_optimizer.state_dict())
    single_optimizer.step()
    resumed_optimizer.step()
    single.step()
    resumed.step()
    assert resumed_optimizer.param_groups[0]["lr"] == single_optimizer.param_groups[0]["lr"]


# ------------------------------------------------------------------------------------------------ checkpoints


def make_checkpoint(output_dir, step, content="good"):
    """A checkpoint as `save_checkpoint` leaves it: its files and their list."""
    path = output_dir / f"checkpoint-{step}"
    path.mkdir(parents=True)
    (path / "state.txt").write_text(content)
    (path / CHECKPOINT_FILES).write_text(json.dumps({"files": {"state.txt": len(content)}}))
    return path


def test_list_latest_resolve_and_prune(tmp_path, caplog):
    for step in (10, 2, 100):
        make_checkpoint(tmp_path, step)
    (tmp_path / "checkpoint-abc").mkdir()
    (tmp_path / f"{INCOMPLETE_PREFIX}checkpoint-200").mkdir()
    (tmp_path / "checkpoint-300").write_text("a file, not a directory")
    assert [p.name for p in list_checkpoints(tmp_path)] == [
        "checkpoint-2",
        "checkpoint-10",
        "checkpoint-100",
    ]
    assert get_latest_checkpoint(tmp_path) == tmp_path / "checkpoint-100"
    assert checkpoint_step(tmp_path / "checkpoint-100") == 100
    with pytest.raises(ValueError, match="not a `checkpoint-<step>`"):
        checkpoint_step(tmp_path / "checkpoint-abc")

    assert resolve_resume_checkpoint(tmp_path, None) is None
    assert resolve_resume_checkpoint(tmp_path, "latest") == tmp_path / "checkpoint-100"
    assert resolve_resume_checkpoint(tmp_path, "checkpoint-10") == tmp_path / "checkpoint-10"
    assert resolve_resume_checkpoint(tmp_path, str(tmp_path / "checkpoint-2")) == tmp_path / "checkpoint-2"
    assert resolve_resume_checkpoint(tmp_path, "checkpoint-7") is None
    assert "Starting a new training run" in caplog.text
    assert resolve_resume_checkpoint(tmp_path / "empty", "latest") is None

    assert prune_checkpoints(tmp_path, None) == []
    removed = prune_checkpoints(tmp_path, 2)
    assert [p.name for p in removed] == ["checkpoint-2"]
    assert [p.name for p in list_checkpoints(tmp_path)] == [
        "checkpoint-10",
        "checkpoint-100",
    ]
    with pytest.raises(ValueError, match="at least 1"):
        prune_checkpoints(tmp_path, 0)


def test_atomic_write_failure_never_replaces_a_good_checkpoint(tmp_path):
    good = make_checkpoint(tmp_path, 5)

    def failing_write(directory):
        with open(os.path.join(directory, "state.txt"), "w") as handle:
            handle.write("half-written")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        atomic_write_directory(good, failing_write, overwrite=True)
    with pytest.raises(RuntimeError, match="disk full"):
        atomic_write_directory(tmp_path / "checkpoint-6", failing_write)
    assert (good / "state.txt").read_text() == "good"
    assert not (tmp_path / "checkpoint-6").exists()
    assert sorted(os.listdir(tmp_path)) == ["checkpoint-5"]  # no temporary directory left

    with pytest.raises(FileExistsError, match="overwrite=True"):
        atomic_write_directory(good, lambda directory: None)
    atomic_write_directory(
        good,
        lambda d: open(os.path.join(d, "state.txt"), "w").write("new"),
        overwrite=True,
    )
    assert (good / "state.txt").read_text() == "new"
    assert sorted(os.listdir(tmp_path)) == ["checkpoint-5"]


def test_killed_save_leaves_only_an_ignored_leftover(tmp_path):
    make_checkpoint(tmp_path, 5)

    class Killed(BaseException):  # like SIGKILL, nothing after the raise point runs in `write`
        pass

    def killed_write(directory):
        os.makedirs(os.path.join(directory, "unet"))
        raise Killed

    with pytest.raises(Killed):
        atomic_write_directory(tmp_path / "checkpoint-6", killed_write)
    # A real kill cannot clean up: recreate what it would leave behind.
    leftover = tmp_path / f"{INCOMPLETE_PREFIX}checkpoint-6"
    (leftover / "unet").mkdir(parents=True)
    assert get_latest_checkpoint(tmp_path) == tmp_path / "checkpoint-5"
    assert remove_incomplete_checkpoints(tmp_path) == [leftover]
    assert sorted(os.listdir(tmp_path)) == ["checkpoint-5"]


def test_a_prune_killed_mid_delete_leaves_no_checkpoint_with_missing_files(tmp_path, monkeypatch):
    for step in (2, 4, 6):
        make_checkpoint(tmp_path, step)
    (tmp_path / "checkpoint-2" / "random_states_0.pkl").write_text("rng")

    class Killed(BaseException):
        pass

    def rmtree_killed_half_way(path, *args, **kwargs):
        (path / "random_states_0.pkl").unlink()  # one file gone, then the process dies
        raise Killed

    monkeypatch.setattr(shutil, "rmtree", rmtree_killed_half_way)
    with pytest.raises(Killed):
        prune_checkpoints(tmp_path, 2)
    monkeypatch.undo()
    # today the half-deleted folder keeps its name: a valid-looking checkpoint with missing files
    assert [p.name for p in list_checkpoints(tmp_path)] == ["checkpoint-4", "checkpoint-6"]
    assert remove_incomplete_checkpoints(tmp_path) == [tmp_path / f"{INCOMPLETE_PREFIX}checkpoint-2.removed"]
    assert sorted(os.listdir(tmp_path)) == ["checkpoint-4", "checkpoint-6"]


def test_prune_keeps_the_checkpoint_a_run_resumes_from(tmp_path):
    for step in (2, 4, 6):
        make_checkpoint(tmp_path, step)
    assert [p.name for p in prune_checkpoints(tmp_path, 1, keep=tmp_path / "checkpoint-2")] == ["checkpoint-4"]
    assert [p.name for p in list_checkpoints(tmp_path)] == ["checkpoint-2", "checkpoint-6"]


def test_incomplete_checkpoints_are_refused_for_resuming(tmp_path):
    make_checkpoint(tmp_path, 2)
    cut = make_checkpoint(tmp_path, 4, content="whole state")
    (cut / CHECKPOINT_FILES).write_text(json.dumps({"files": {"state.txt": 11, "random_states_0.pkl": 10}}))
    assert checkpoint_problems(tmp_path / "checkpoint-2") == []
    assert checkpoint_problems(cut) == ["random_states_0.pkl missing"]
    with pytest.raises(ValueError, match=r"checkpoint-4 is incomplete \(random_states_0.pkl missing\).*checkpoint-2"):
        resolve_resume_checkpoint(tmp_path, "latest")
    (cut / "random_states_0.pkl").write_text("short")
    assert checkpoint_problems(cut) == ["random_states_0.pkl has 5 bytes instead of 10"]
    # a checkpoint without the list (accelerate's own, or an older one) needs accelerate's state files
    legacy = tmp_path / "legacy" / "checkpoint-4"
    legacy.mkdir(parents=True)
    for name in ("optimizer.bin", "scheduler.bin"):
        (legacy / name).write_text("x")
    with pytest.raises(ValueError, match=r"the random states \(random_states_\*.pkl\) missing"):
        resolve_resume_checkpoint(legacy.parent, "latest")
    (legacy / "random_states_0.pkl").write_text("x")
    assert resolve_resume_checkpoint(legacy.parent, "latest") == legacy


# ------------------------------------------------------------------------------------------------ accelerate


class TinyModel(ModelMixin, ConfigMixin):
    @register_to_config
    def __init__(self, width: int = 4, dropout: float = 0.5):
        super().__init__()
        self.linear = nn.Linear(3, width)
        self.drop = nn.Dropout(dropout)

    def forward(self, x):
        return self.drop(self.linear(x))


class TinyPeftModel(TinyModel, PeftAdapterMixin):
    """TinyModel that takes peft adapters (`add_adapter`), as diffusers' UNets do."""


def train(
    output_dir,
    stop_at,
    save_at=(),
    resume=False,
    checkpoints_total_limit=2,
    break_save_at=None,
    total_steps=6,
    lora=False,
):
    """A miniature diffusers-style training loop of `total_steps`, stopped after `stop_at`; returns the losses
    of the steps it ran and the model."""
    set_seed(0)
    accelerator = Accelerator(project_config=ProjectConfiguration(project_dir=str(output_dir)))
    model = TinyPeftModel() if lora else TinyModel()
    head = nn.Linear(4, 1)  # not in the hook mapping: accelerate saves it
    if lora:
        from peft import LoraConfig

        model.add_adapter(LoraConfig(r=2, lora_alpha=2, target_modules=["linear"], init_lora_weights="gaussian"))
    optimizer = get_optimizer([*model.parameters(), *head.parameters()], learning_rate=0.05)
    scheduler = get_poly_milestone_scheduler(optimizer, total_steps, [2, 4], [0.5, 0.25])
    register_checkpoint_hooks(accelerator, {TinyModel: "tiny"})
    model, head, optimizer, scheduler = accelerator.prepare(model, head, optimizer, scheduler)
    first = 0
    if resume:
        checkpoint = resolve_resume_checkpoint(output_dir, "latest")
        accelerator.load_state(str(checkpoint))
        first = checkpoint_step(checkpoint)
    losses = []
    for step in range(first, stop_at):
        batch = torch.randn(8, 3, generator=torch.Generator().manual_seed(step))
        loss = head(model(batch)).pow(2).mean()  # dropout draws from the global RNG
        accelerator.backward(loss)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad()
        losses.append(loss.item())
        if step + 1 == break_save_at:

            def fail(models, weights, directory):
                raise OSError("simulated failure in the middle of save_state")

            accelerator.register_save_state_pre_hook(fail)
        if step + 1 in save_at:
            save_checkpoint(accelerator, output_dir, step + 1, checkpoints_total_limit)
    return losses, accelerator.unwrap_model(model)


def test_resume_continues_exactly_and_hooks_write_diffusers_subfolders(tmp_path):
    full, full_model = train(tmp_path / "uninterrupted", 6)
    first, _ = train(tmp_path / "run", 3, save_at=(1, 2, 3))
    checkpoint = tmp_path / "run" / "checkpoint-3"
    assert [p.name for p in list_checkpoints(tmp_path / "run")] == [
        "checkpoint-2",
        "checkpoint-3",
    ]
    assert (checkpoint / "tiny" / "config.json").is_file()
    assert (checkpoint / "tiny" / "diffusion_pytorch_model.safetensors").is_file()
    assert (checkpoint / "model.safetensors").is_file()  # the head, saved by accelerate
    assert not (checkpoint / "model_1.safetensors").exists()
    assert TinyModel.from_pretrained(checkpoint, subfolder="tiny").config.width == 4

    rest, resumed_model = train(tmp_path / "run", 6, resume=True)
    assert first + rest == full  # bit-identical losses, dropout RNG and schedule included
    for name, value in full_model.state_dict().items():
        assert torch.equal(resumed_model.state_dict()[name], value)


def test_lora_runs_resume_exactly_and_checkpoint_their_adapter(tmp_path):
    full, full_model = train(tmp_path / "uninterrupted", 6, lora=True)
    first, _ = train(tmp_path / "run", 3, save_at=(3,), lora=True)
    checkpoint = tmp_path / "run" / "checkpoint-3"
    assert checkpoint_problems(checkpoint) == []
    assert (checkpoint / "tiny" / "adapter_config.json").is_file()
    rest, resumed_model = train(tmp_path / "run", 6, resume=True, lora=True)  # today: base_layer / lora_A mismatch
    assert first + rest == full
    for name, value in full_model.state_dict().items():
        assert torch.equal(resumed_model.state_dict()[name], value), name
    with pytest.raises(ValueError, match="same --use_lora setting"):
        train(tmp_path / "run", 6, resume=True, lora=False)


def test_save_peft_adapter_writes_peft_format_that_loads_back(tmp_path):
    from peft import LoraConfig

    torch.manual_seed(0)
    model = TinyPeftModel(dropout=0.0)
    base = {k: v.clone() for k, v in model.state_dict().items()}
    model.add_adapter(LoraConfig(r=2, lora_alpha=2, target_modules=["linear"], init_lora_weights="gaussian"))
    save_peft_adapter(model, tmp_path / "adapter")
    assert sorted(os.listdir(tmp_path / "adapter")) == ["adapter_config.json", "adapter_model.safetensors"]
    assert json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())["r"] == 2
    fresh = TinyPeftModel(dropout=0.0)
    fresh.load_state_dict(base)
    fresh.load_lora_adapter(str(tmp_path / "adapter"), weight_name="adapter_model.safetensors", prefix=None)
    x = torch.randn(5, 3)
    torch.testing.assert_close(fresh(x), model(x))
    with pytest.raises(ValueError, match="no peft adapter"):
        save_peft_adapter(TinyModel(), tmp_path / "none")


def test_save_checkpoint_lists_the_files_it_wrote(tmp_path):
    train(tmp_path, 2, save_at=(2,))
    listing = json.loads((tmp_path / "checkpoint-2" / CHECKPOINT_FILES).read_text())["files"]
    assert {"tiny/config.json", "model.safetensors", "optimizer.bin", "random_states_0.pkl"} <= set(listing)
    assert training_utils.checkpoint_problems(tmp_path / "checkpoint-2") == []


def test_failed_save_keeps_the_previous_checkpoint_and_does_not_prune(tmp_path):
    with pytest.raises(OSError, match="simulated failure"):
        train(tmp_path, 3, save_at=(1, 2, 3), checkpoints_total_limit=1, break_save_at=2)
    assert [p.name for p in list_checkpoints(tmp_path)] == ["checkpoint-1"]
    assert [name for name in os.listdir(tmp_path) if name.startswith(INCOMPLETE_PREFIX)] == []
    assert (tmp_path / "checkpoint-1" / "tiny" / "config.json").is_file()


def test_save_checkpoint_rejects_automatic_naming(tmp_path):
    accelerator = Accelerator(
        project_config=ProjectConfiguration(project_dir=str(tmp_path), automatic_checkpoint_naming=True)
    )
    with pytest.raises(ValueError, match="automatic_checkpoint_naming"):
        save_checkpoint(accelerator, tmp_path, 1)


# ------------------------------------------------------------------------------------------------ model cards


def read_card(path):
    text = path.read_text()
    _, metadata, body = text.split("---", 2)
    return yaml.safe_load(metadata), body


def test_model_card_from_a_template(tmp_path):
    template = tmp_path / "template.md"
    template.write_text("---\n{{ card_data }}\n---\n# {{ title }}\n\n{{ model_description }}\n")
    path = write_model_card(
        tmp_path / "out",
        template_path=template,
        model_description="A student UNet.",
        base_model="stabilityai/stable-diffusion-2-1",
        datasets=["RefMatte"],
        tags=["distillation"],
        title="Soft grounding student",
    )
    metadata, body = read_card(path)
    assert metadata["license"] == "apache-2.0"
    assert metadata["library_name"] == "diffusers"
    assert metadata["base_model"] == "stabilityai/stable-diffusion-2-1"
    assert metadata["datasets"] == ["RefMatte"]
    assert "distillation" in metadata["tags"] and "diffusers-training" in metadata["tags"]
    assert "# Soft grounding student" in body and "A student UNet." in body

    with pytest.raises(FileExistsError, match="overwrite=True"):
        write_model_card(tmp_path / "out", template_path=template)
    write_model_card(
        tmp_path / "out",
        template_path=template,
        model_description="v2",
        overwrite=True,
        title="t",
    )
    assert "v2" in read_card(path)[1]
    with pytest.raises(FileNotFoundError, match="does not exist"):
        write_model_card(tmp_path / "other", template_path=tmp_path / "missing.md")


def test_model_card_default_template(tmp_path):
    metadata, body = read_card(write_model_card(tmp_path, model_description="Decoder trained on AM-2k."))
    assert metadata["license"] == "apache-2.0"
    assert "Decoder trained on AM-2k." in body


class TinySubModel(TinyModel):
    pass


class FakeAccelerator:
    is_main_process = True

    def unwrap_model(self, model):
        return model


def test_hooks_resolve_base_classes_and_reject_shared_subfolders(tmp_path):
    save = make_save_model_hook(FakeAccelerator(), {TinyModel: "tiny", nn.Linear: "linear"})
    models, weights = [nn.ReLU(), TinySubModel(width=3)], ["relu state", "tiny state"]
    save(models, weights, str(tmp_path))
    assert weights == ["relu state"]  # the subclass was saved through its base class's entry
    assert TinySubModel.from_pretrained(tmp_path, subfolder="tiny").config.width == 3

    saved = models[1].state_dict()
    load = make_load_model_hook(FakeAccelerator(), {TinyModel: "tiny"})
    torch.manual_seed(1)
    target = TinySubModel(width=3)
    assert not torch.equal(target.linear.weight, saved["linear.weight"])
    remaining = [nn.ReLU(), target]
    load(remaining, str(tmp_path))
    assert len(remaining) == 1 and isinstance(remaining[0], nn.ReLU)
    assert torch.equal(target.linear.weight, saved["linear.weight"])

    with pytest.raises(ValueError, match="subfolder 'tiny'"):
        save([TinyModel(), TinySubModel()], [{}, {}], str(tmp_path / "twice"))


def test_8bit_adam_needs_bitsandbytes():
    try:
        import bitsandbytes  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match="pip install bitsandbytes"):
            get_optimizer([nn.Parameter(torch.zeros(1))], 1e-3, use_8bit_adam=True)
    else:
        pytest.skip("bitsandbytes is installed")


def test_latent_cache_encodes_each_image_once_and_returns_the_same_latents():
    from diffusers_matte.testing import get_dummy_components
    from diffusers_matte.training_loop import FrozenEncoders

    components = get_dummy_components()
    plain = FrozenEncoders(components["vae"], components["text_encoder"], components["tokenizer"])
    cached = FrozenEncoders(
        components["vae"],
        components["text_encoder"],
        components["tokenizer"],
        latent_cache={},
    )
    pixels = torch.rand(3, 3, 16, 16, generator=torch.Generator().manual_seed(0)) * 2 - 1
    pixels[2] = pixels[0]  # two instances of one image
    expected = plain.encode_image(pixels)
    torch.testing.assert_close(cached.encode_image(pixels), expected, rtol=1e-5, atol=1e-5)
    assert len(cached.latent_cache) == 2
    calls = []
    original = components["vae"].encode
    components["vae"].encode = lambda *a, **k: calls.append(1) or original(*a, **k)
    torch.testing.assert_close(cached.encode_image(pixels[[1, 0]]), expected[[1, 0]], rtol=1e-5, atol=1e-5)
    assert not calls  # every image was seen: the VAE is not run again
