"""Tests of MatteUNet2DConditionModel, in the spirit of diffusers' model tester mixins."""

import pytest
import torch
import torch.nn.functional as F
from diffusers import UNet2DConditionModel
from diffusers.models.attention_processor import AttnProcessor, AttnProcessor2_0

from diffusers_matte.models.attention_processor import (
    MatteAttnProcessor,
    RemovedSelfAttention,
)
from diffusers_matte.models.unet_matte import MatteUNet2DConditionModel
from diffusers_matte.testing import get_dummy_unet_init_dict

STUDENT = dict(prediction_head="matte", self_attention_kv_downsample=(-1, 2, 2))


def make_inputs(batch=2, height=16, width=16, tokens=5, seed=0):
    generator = torch.Generator().manual_seed(seed)
    latents = torch.randn(batch, 4, height, width, generator=generator)
    text = torch.randn(batch, tokens, 24, generator=generator)
    return latents, text


def make_teacher(seed=0, **overrides):
    torch.manual_seed(seed)
    return MatteUNet2DConditionModel(**get_dummy_unet_init_dict(prediction_head="region", **overrides)).eval()


def make_student(seed=0, teacher_overrides=None, **overrides):
    teacher = make_teacher(seed, **(teacher_overrides or {}))
    torch.manual_seed(seed + 1)
    return MatteUNet2DConditionModel.from_teacher(teacher, "tiny", **{**STUDENT, **overrides}).eval()


@pytest.fixture(scope="module")
def student():
    return make_student()


# --------------------------------------------------------------------------------------------------------
# Heads and outputs


@pytest.mark.parametrize("head,channels", [("latent", 4), ("region", 3), ("matte", 2)])
def test_head_output_shapes(head, channels):
    unet = MatteUNet2DConditionModel(**get_dummy_unet_init_dict(prediction_head=head)).eval()
    latents, text = make_inputs()
    with torch.no_grad():
        sample = unet(latents, 0, text).sample
    assert sample.shape == (2, channels, 16, 16)
    assert unet.config.out_channels == channels


def test_matte_head_alpha_in_unit_interval_and_predict_fields(student):
    latents, text = make_inputs()
    with torch.no_grad():
        pred = student.predict(latents, text, output_features=True)
        sample = student(latents, student.config.prediction_timestep, text).sample
    assert pred.coarse_alpha.shape == pred.transparency_logits.shape == (2, 1, 16, 16)
    assert pred.coarse_alpha.min() >= 0 and pred.coarse_alpha.max() <= 1
    assert pred.region_logits is None and pred.latent is None
    assert pred.features.shape == (2, student.config.block_out_channels[0], 16, 16)
    torch.testing.assert_close(torch.cat([pred.coarse_alpha, pred.transparency_logits], 1), sample)


def test_predict_without_features_returns_none(student):
    latents, text = make_inputs(batch=1)
    with torch.no_grad():
        assert student.predict(latents, text).features is None


class CountingWrapper(torch.nn.Module):
    """Runs a UNet as DDP does (its forward calls the wrapped module's) and counts the calls."""

    def __init__(self, module):
        super().__init__()
        self.module, self.calls = module, 0

    def forward(self, *args, **kwargs):
        self.calls += 1
        return self.module(*args, **kwargs)


def test_predict_runs_through_a_given_wrapper(student):
    latents, text = make_inputs(batch=1)
    wrapper = CountingWrapper(student)
    with torch.no_grad():
        direct = student.predict(latents, text, output_features=True)
        wrapped = student.predict(latents, text, output_features=True, module=wrapper)
    assert wrapper.calls == 1
    torch.testing.assert_close(wrapped.coarse_alpha, direct.coarse_alpha)
    torch.testing.assert_close(wrapped.features, direct.features)  # the head's input, captured through the wrapper


def test_region_predict_uses_configured_timestep():
    teacher = make_teacher()
    latents, text = make_inputs()
    with torch.no_grad():
        logits = teacher.predict(latents, text).region_logits
        at_other_t = teacher(latents, 500, text).sample
    assert logits.shape == (2, 3, 16, 16)
    assert not torch.allclose(logits, at_other_t)


def test_invalid_config_errors():
    with pytest.raises(ValueError, match="prediction_head"):
        MatteUNet2DConditionModel(**get_dummy_unet_init_dict(prediction_head="depth"))
    with pytest.raises(ValueError, match="one factor per resolution level"):
        MatteUNet2DConditionModel(**get_dummy_unet_init_dict(self_attention_kv_downsample=(2, 2)))
    with pytest.raises(ValueError, match="must be -1, 1 or k > 1"):
        MatteUNet2DConditionModel(**get_dummy_unet_init_dict(self_attention_kv_downsample=(0, 1, 1, 1)))


def test_determinism(student):
    latents, text = make_inputs()
    with torch.no_grad():
        first = student(latents, 0, text).sample
        second = student(latents, 0, text).sample
    torch.testing.assert_close(first, second, rtol=0, atol=0)


def test_dict_and_tuple_outputs_agree(student):
    latents, text = make_inputs()
    with torch.no_grad():
        as_dict = student(latents, 0, text).sample
        as_tuple = student(latents, 0, text, return_dict=False)
    assert isinstance(as_tuple, tuple) and len(as_tuple) == 1
    torch.testing.assert_close(as_dict, as_tuple[0], rtol=0, atol=0)


# --------------------------------------------------------------------------------------------------------
# Saving and loading


def test_save_load_round_trip(student, tmp_path):
    student.save_pretrained(tmp_path)
    loaded = MatteUNet2DConditionModel.from_pretrained(tmp_path).eval()
    assert (tmp_path / "diffusion_pytorch_model.safetensors").exists()
    assert loaded.config.self_attention_kv_downsample == [-1, 2, 2]
    assert loaded.config.prediction_head == "matte"
    assert set(loaded.state_dict()) == set(student.state_dict())
    assert any(k.endswith("attn1.processor.kv_down.weight") for k in loaded.state_dict())
    latents, text = make_inputs()
    with torch.no_grad():
        torch.testing.assert_close(loaded(latents, 0, text).sample, student(latents, 0, text).sample)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_dtype_round_trip(student, tmp_path, dtype):
    student.to(dtype).save_pretrained(tmp_path)
    student.to(torch.float32)
    loaded = MatteUNet2DConditionModel.from_pretrained(tmp_path, torch_dtype=dtype)
    assert all(p.dtype == dtype for p in loaded.parameters())


def test_bf16_forward_is_finite(student):
    model = make_student().to(torch.bfloat16)
    latents, text = make_inputs()
    with torch.no_grad():
        sample = model(latents.bfloat16(), 0, text.bfloat16()).sample
    assert sample.dtype == torch.bfloat16 and torch.isfinite(sample).all()


def test_loads_plain_sd_unet_checkpoint_with_new_head(tmp_path):
    torch.manual_seed(0)
    plain = UNet2DConditionModel(**get_dummy_unet_init_dict())
    plain.save_pretrained(tmp_path)
    teacher = MatteUNet2DConditionModel.from_pretrained(tmp_path, prediction_head="region")
    assert teacher.config.out_channels == 3
    assert not any(p.is_meta for p in teacher.parameters())
    latents, text = make_inputs()
    with torch.no_grad():
        assert torch.isfinite(teacher.eval()(latents, 0, text).sample).all()
    torch.testing.assert_close(teacher.conv_in.weight, plain.conv_in.weight)


# --------------------------------------------------------------------------------------------------------
# Self-attention optimisation (section 3.3)


def test_removed_and_downsampled_layers_follow_levels(student):
    blocks = {name: module for name, module in student.named_modules() if name.endswith("transformer_blocks.0")}
    for name, block in blocks.items():
        level = student._level_of(name)
        if level == 0:
            assert isinstance(block.attn1, RemovedSelfAttention)
        else:
            assert isinstance(block.attn1.processor, MatteAttnProcessor)
            assert block.attn1.processor.kv_downsample == 2
    # 9 transformer blocks: 6 at levels 1-2 keep (down-sampled) self-attention, 3 at level 0 lose it.
    assert len(student.kv_downsample_processors) == 6
    assert sum(isinstance(b.attn1, RemovedSelfAttention) for b in blocks.values()) == 3


def test_downsample_equals_strided_convolution_and_handles_odd_grids():
    torch.manual_seed(0)
    proc = MatteAttnProcessor(hidden_size=6, kv_downsample=2)
    torch.nn.init.normal_(proc.kv_down.weight)
    for height, width in [(4, 6), (5, 3)]:
        tokens = torch.randn(2, height * width, 6)
        reduced, size = proc.downsample(tokens, (height, width))
        grid = tokens.reshape(2, height, width, 6).permute(0, 3, 1, 2)
        grid = F.pad(grid, (0, -width % 2, 0, -height % 2), mode="replicate")
        expected = proc.kv_down(grid)
        assert size == tuple(expected.shape[-2:])
        torch.testing.assert_close(reduced, expected.flatten(2).transpose(1, 2), rtol=1e-5, atol=1e-5)


def test_downsample_keeps_its_permuted_weight_only_without_gradients():
    torch.manual_seed(0)
    proc = MatteAttnProcessor(hidden_size=6, kv_downsample=2)
    torch.nn.init.normal_(proc.kv_down.weight)
    tokens = torch.randn(1, 16, 6)

    def conv(tokens):
        return proc.kv_down(tokens.reshape(1, 4, 4, 6).permute(0, 3, 1, 2)).flatten(2).transpose(1, 2)

    with torch.no_grad():
        first = proc.downsample(tokens, (4, 4))[0]
        kept = proc.patch_weight()
        assert proc.patch_weight() is kept  # the same copy while the weight is unchanged
        torch.testing.assert_close(first, conv(tokens), rtol=1e-5, atol=1e-5)
        proc.kv_down.weight.mul_(2.0)  # an optimiser step or a load changes the parameter in place
        assert proc.patch_weight() is not kept
        torch.testing.assert_close(proc.downsample(tokens, (4, 4))[0], conv(tokens), rtol=1e-5, atol=1e-5)
    # with gradients the permuted weight is taken afresh and the convolution's weight learns
    proc.downsample(tokens, (4, 4))[0].square().sum().backward()
    assert proc.kv_down.weight.grad is not None and proc.kv_down.weight.grad.abs().sum() > 0
    assert "_patch_weight" not in "".join(proc.state_dict())


def test_kv_downsample_initialised_as_average_pooling():
    proc = MatteAttnProcessor(hidden_size=3, kv_downsample=2)
    tokens = torch.randn(1, 16, 3)
    reduced, _ = proc.downsample(tokens, (4, 4))
    pooled = F.avg_pool2d(tokens.reshape(1, 4, 4, 3).permute(0, 3, 1, 2), 2)
    torch.testing.assert_close(reduced, pooled.flatten(2).transpose(1, 2))


def test_non_square_latents_run(student):
    latents, text = make_inputs(height=16, width=12)
    with torch.no_grad():
        assert student(latents, 0, text).sample.shape == (2, 2, 16, 12)


# --------------------------------------------------------------------------------------------------------
# Processors: diffusers calls must not silently drop the down-sampling weights


def _kv_state(model):
    return {k: v.clone() for k, v in model.state_dict().items() if "kv_down" in k}


@pytest.mark.parametrize(
    "call",
    [
        lambda m: m.set_default_attn_processor(),
        lambda m: m.set_attention_slice(1),
        lambda m: m.set_attn_processor(AttnProcessor2_0()),
        lambda m: (m.fuse_qkv_projections(), m.unfuse_qkv_projections()),
    ],
    ids=["set_default", "slicing", "single_processor", "fuse_qkv"],
)
def test_processor_changes_keep_kv_downsampling(call):
    model = make_student()
    before = _kv_state(model)
    latents, text = make_inputs()
    with torch.no_grad():
        reference = model(latents, 0, text).sample
        call(model)
        after_output = model(latents, 0, text).sample
    after = _kv_state(model)
    assert before.keys() == after.keys() and len(before) > 0
    for key in before:
        torch.testing.assert_close(before[key], after[key])
    torch.testing.assert_close(after_output, reference, rtol=1e-4, atol=1e-5)


def test_set_default_attn_processor_sets_explicit_softmax_on_plain_layers():
    model = make_student()
    model.set_default_attn_processor()
    kinds = {type(p) for p in model.attn_processors.values()}
    assert kinds == {AttnProcessor, MatteAttnProcessor}


def test_processor_dict_count_mismatch_raises(student):
    with pytest.raises(ValueError, match="number of processors"):
        student.set_attn_processor({"x": AttnProcessor2_0()})


def test_attn_processors_get_set_round_trip():
    model = make_student()
    processors = model.attn_processors
    model.set_attn_processor(processors)
    assert all(model.attn_processors[k] is v for k, v in processors.items())


# --------------------------------------------------------------------------------------------------------
# Capture for distillation (section 3.2.2)


def test_capture_shapes_teacher():
    teacher = make_teacher()
    latents, text = make_inputs()
    with torch.no_grad(), teacher.capture(features=["down_blocks.1", "up_blocks.3"], attention_maps=True) as cap:
        teacher(latents, 0, text)
    assert cap.features["down_blocks.1"].shape == (
        2,
        32,
        4,
        4,
    )  # after its down-sampler
    assert cap.features["up_blocks.3"].shape == (2, 16, 16, 16)
    assert {k: tuple(v.shape) for k, v in cap.self_attention.items()} == {
        (16, 16): (2, 256, 256),
        (8, 8): (2, 64, 64),
        (4, 4): (2, 16, 16),
        (2, 2): (2, 4, 4),
    }
    assert {k: tuple(v.shape) for k, v in cap.cross_attention.items()}[(16, 16)] == (
        2,
        256,
        5,
    )
    torch.testing.assert_close(cap.self_attention[(8, 8)].sum(-1), torch.ones(2, 64))


def test_capture_student_removal_and_downsampling_change_map_shapes(student):
    latents, text = make_inputs()
    with torch.no_grad(), student.capture(attention_maps=True) as cap:
        student(latents, 0, text)
    # Level 0 (16x16) lost its self-attention; levels 1 and 2 attend to a 2x2-pooled key grid.
    assert {k: tuple(v.shape) for k, v in cap.self_attention.items()} == {
        (8, 8): (2, 64, 16),
        (4, 4): (2, 16, 4),
    }
    assert cap.self_attention_kv_size == {(8, 8): (4, 4), (4, 4): (2, 2)}
    assert set(cap.cross_attention) == {(16, 16), (8, 8), (4, 4)}


def test_capture_matches_fast_path_and_restores_processors(student):
    latents, text = make_inputs()
    before = student.attn_processors
    with torch.no_grad():
        fast = student(latents, 0, text).sample
        with student.capture(attention_maps=True):
            explicit = student(latents, 0, text).sample
    torch.testing.assert_close(explicit, fast, rtol=1e-4, atol=1e-5)
    after = student.attn_processors
    assert {k: type(v) for k, v in after.items()} == {k: type(v) for k, v in before.items()}
    assert all(getattr(p, "recorder", None) is None for p in after.values())


def test_capture_unknown_feature_name_raises(student):
    with pytest.raises(ValueError, match="names no module"):
        with student.capture(features=["up_blocks.7"]):
            pass


def test_capture_non_square_keys_by_grid(student):
    latents, text = make_inputs(height=16, width=12)
    with torch.no_grad(), student.capture(attention_maps=True) as cap:
        student(latents, 0, text)
    assert set(cap.self_attention) == {(8, 6), (4, 3)}
    assert cap.self_attention_kv_size[(4, 3)] == (2, 2)


@pytest.mark.parametrize("checkpointing", [False, True])
def test_gradients_flow_through_captured_maps(checkpointing):
    model = make_student().train()
    if checkpointing:
        model.enable_gradient_checkpointing()
    latents, text = make_inputs()
    # With gradient checkpointing, backward recomputes the forward: it must run inside the block.
    with model.capture(features=["up_blocks.0"], attention_maps=True) as cap:
        model(latents, 0, text)
        maps = cap.self_attention
        loss = sum(m.square().sum() for m in maps.values()) + cap.features["up_blocks.0"].mean()
        loss.backward()
    kv = [p for n, p in model.named_parameters() if "kv_down" in n]
    assert kv and all(p.grad is not None and p.grad.abs().sum() > 0 for p in kv)


# --------------------------------------------------------------------------------------------------------
# Gradient checkpointing


def test_gradient_checkpointing_equivalence():
    def loss_and_grads(checkpointing):
        model = make_student().train()
        if checkpointing:
            model.enable_gradient_checkpointing()
        latents, text = make_inputs()
        loss = model(latents, 0, text).sample.square().mean()
        loss.backward()
        return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    loss, grads = loss_and_grads(False)
    loss_ckpt, grads_ckpt = loss_and_grads(True)
    torch.testing.assert_close(loss, loss_ckpt, rtol=1e-5, atol=1e-6)
    assert grads.keys() == grads_ckpt.keys()
    for name in grads:
        torch.testing.assert_close(grads[name], grads_ckpt[name], rtol=5e-5, atol=5e-5, msg=name)


# --------------------------------------------------------------------------------------------------------
# BK-SDM pruning (Kim et al. 2024) and weight copy


@pytest.mark.parametrize("variant", ["base", "small", "tiny"])
@pytest.mark.parametrize("sd2", [False, True], ids=["sd1", "sd2"])
def test_from_teacher_copies_every_pruned_tensor(variant, sd2):
    overrides = dict(use_linear_projection=True, attention_head_dim=(2, 4, 4, 4)) if sd2 else {}
    teacher = make_teacher(**overrides)
    student, info = MatteUNet2DConditionModel.from_teacher(teacher, variant, output_loading_info=True)
    assert info["new_keys"] == []
    assert set(info["copied_keys"]) == set(student.state_dict())
    assert student.config.layers_per_block == 1
    assert (student.config.mid_block_type is None) == (variant != "base")
    if variant == "tiny":
        assert tuple(student.config.block_out_channels) == (16, 32, 32)
        if sd2:
            assert tuple(student.config.attention_head_dim) == (2, 4, 4)
    latents, text = make_inputs()
    with torch.no_grad():
        assert student(latents, 0, text).sample.shape == (2, 3, 16, 16)


def test_from_teacher_mapping_takes_first_and_last_up_layers():
    teacher = make_teacher()
    student = MatteUNet2DConditionModel.from_teacher(teacher, "tiny")
    t_state, s_state = teacher.state_dict(), student.state_dict()
    torch.testing.assert_close(
        s_state["up_blocks.0.resnets.0.conv1.weight"],
        t_state["up_blocks.1.resnets.0.conv1.weight"],
    )
    torch.testing.assert_close(
        s_state["up_blocks.0.resnets.1.conv1.weight"],
        t_state["up_blocks.1.resnets.2.conv1.weight"],
    )
    torch.testing.assert_close(
        s_state["up_blocks.1.upsamplers.0.conv.weight"],
        t_state["up_blocks.2.upsamplers.0.conv.weight"],
    )
    torch.testing.assert_close(
        s_state["down_blocks.2.resnets.0.conv1.weight"],
        t_state["down_blocks.2.resnets.0.conv1.weight"],
    )


def test_from_teacher_reports_new_head_and_kv_convs():
    teacher = make_teacher()
    _, info = MatteUNet2DConditionModel.from_teacher(teacher, "tiny", output_loading_info=True, **STUDENT)
    new = set(info["new_keys"])
    assert {
        "conv_out.proj.weight",
        "conv_out.proj.bias",
    } <= new  # 3 region logits -> 2 matte outputs
    assert all(k.startswith("conv_out.proj") or "kv_down" in k for k in new)
    assert any("attn1" in k for k in info["unused_teacher_keys"])  # removed level-0 self-attention


def test_from_teacher_same_architecture_reproduces_teacher():
    teacher = make_teacher()
    student = MatteUNet2DConditionModel.from_teacher(teacher, None).eval()
    latents, text = make_inputs()
    with torch.no_grad():
        torch.testing.assert_close(student(latents, 0, text).sample, teacher(latents, 0, text).sample)


def test_from_teacher_rejects_unknown_variant():
    with pytest.raises(ValueError, match="variant"):
        MatteUNet2DConditionModel.from_teacher(make_teacher(), "huge")


def test_loading_with_new_kv_downsampling_initialises_it_as_average_pooling(tmp_path):
    torch.manual_seed(0)
    UNet2DConditionModel(**get_dummy_unet_init_dict()).save_pretrained(tmp_path)
    model, info = MatteUNet2DConditionModel.from_pretrained(
        tmp_path, self_attention_kv_downsample=(1, 2, 1, 1), output_loading_info=True
    )
    assert info["missing_keys"] and all("kv_down" in k for k in info["missing_keys"])
    for proc in model.kv_downsample_processors.values():
        tokens = torch.randn(1, 16, proc.kv_down.in_channels)
        reduced, _ = proc.downsample(tokens, (4, 4))
        pooled = F.avg_pool2d(tokens.reshape(1, 4, 4, -1).permute(0, 3, 1, 2), 2)
        torch.testing.assert_close(reduced, pooled.flatten(2).transpose(1, 2))
