# Copyright 2026 The diffusers-matte authors. Licensed under the Apache License, Version 2.0.
"""Pipeline tests in the spirit of diffusers' `PipelineTesterMixin` (tests/pipelines/test_pipelines_common.py)."""

import inspect
import logging
import sys

import numpy as np
import PIL.Image
import pytest
import torch
from diffusers.utils import logging as diffusers_logging

from diffusers_matte.models.matting_decoder import MattingDecoder
from diffusers_matte.models.sparse_refiner import SparseMatteRefiner
from diffusers_matte.models.text_adapter import TextAdapter
from diffusers_matte.models.unet_matte import MatteUNet2DConditionModel
from diffusers_matte.pipelines import (
    SoftGroundingMattingOutput,
    SoftGroundingMattingPipeline,
)
from diffusers_matte.testing import get_dummy_components, get_dummy_inputs

params = {"image", "prompt"}
required_optional_params = {
    "processing_resolution",
    "match_input_resolution",
    "batch_size",
    "output_type",
    "return_dict",
}
FIELDS = ("alpha", "coarse_alpha", "transparency")


def _pipe(**kwargs) -> SoftGroundingMattingPipeline:
    pipe = SoftGroundingMattingPipeline(**get_dummy_components(**kwargs))
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _assert_outputs_close(a, b, atol=1e-5):
    for field in FIELDS:
        np.testing.assert_allclose(getattr(a, field), getattr(b, field), atol=atol, rtol=0, err_msg=field)


@pytest.fixture(scope="module")
def pipe():
    return _pipe()


@pytest.fixture(scope="module")
def reference(pipe):
    return pipe(**get_dummy_inputs())


def test_call_signature():
    signature = inspect.signature(SoftGroundingMattingPipeline.__call__).parameters
    assert params <= set(signature)
    for name in required_optional_params:
        assert signature[name].default is not inspect.Parameter.empty, name


def test_components_function(pipe):
    init = set(inspect.signature(SoftGroundingMattingPipeline.__init__).parameters) - {"self"}
    scalars = {"default_processing_resolution"}
    assert set(pipe.components) == init - scalars
    assert pipe.config.default_processing_resolution == 512


def test_output_formats_and_ranges(pipe, reference):
    assert isinstance(reference, SoftGroundingMattingOutput)
    for field in FIELDS:
        value = getattr(reference, field)
        assert value.shape == (1, 40, 56, 1) and value.dtype == np.float32, field
        assert value.min() >= 0 and value.max() <= 1, field
    as_pt = pipe(**{**get_dummy_inputs(), "output_type": "pt"})
    assert as_pt.alpha.shape == (1, 1, 40, 56)
    np.testing.assert_allclose(as_pt.alpha.permute(0, 2, 3, 1).numpy(), reference.alpha, atol=1e-6)
    as_pil = pipe(**{**get_dummy_inputs(), "output_type": "pil"})
    assert as_pil.alpha[0].mode == "L" and as_pil.alpha[0].size == (56, 40)
    np.testing.assert_allclose(np.asarray(as_pil.alpha[0]) / 255.0, reference.alpha[0, ..., 0], atol=1 / 255)


def test_deterministic_and_dict_tuple_equivalent(pipe, reference):
    again = pipe(**get_dummy_inputs())
    _assert_outputs_close(again, reference, atol=0)
    as_tuple = pipe(**get_dummy_inputs(), return_dict=False)
    assert isinstance(as_tuple, tuple) and len(as_tuple) == 3
    for field, value in zip(FIELDS, as_tuple):
        np.testing.assert_array_equal(value, getattr(reference, field))


def test_generator_is_accepted_and_changes_nothing(pipe, reference):
    # Deterministic by construction; a generator is accepted for compatibility with other diffusers pipelines.
    for seed in (0, 1):
        out = pipe(**get_dummy_inputs(), generator=torch.Generator().manual_seed(seed))
        np.testing.assert_array_equal(out.alpha, reference.alpha)


def test_cpu_activations_run_in_channels_last_with_the_same_matte(pipe, reference, monkeypatch):
    from diffusers_matte.pipelines.soft_grounding import pipeline_soft_grounding as module

    image = torch.rand(2, 3, 8, 8)
    last = module.cpu_channels_last(image)
    assert last.is_contiguous(memory_format=torch.channels_last) and not image.is_contiguous(
        memory_format=torch.channels_last
    )
    torch.testing.assert_close(last, image, rtol=0, atol=0)
    tokens = torch.rand(2, 7, 16)
    assert module.cpu_channels_last(tokens) is tokens  # only images and latents have channels
    # the layout the convolutions see changes, not the result: the same matte with the conversion switched off
    monkeypatch.setattr(module, "cpu_channels_last", lambda tensor: tensor.contiguous())
    _assert_outputs_close(pipe(**get_dummy_inputs()), reference, atol=1e-5)
    assert all(p.is_contiguous() for p in pipe.unet.parameters())  # weights untouched: save_pretrained works


def test_prompt_and_image_matter(pipe, reference):
    other_prompt = pipe(**{**get_dummy_inputs(), "prompt": "a glass of water"})
    assert np.abs(other_prompt.coarse_alpha - reference.coarse_alpha).max() > 1e-3
    assert np.abs(other_prompt.alpha - reference.alpha).max() > 1e-5
    other_image = pipe(**get_dummy_inputs(seed=1))
    assert np.abs(other_image.alpha - reference.alpha).max() > 1e-3


def test_inference_batch_single_identical(pipe):
    inputs = get_dummy_inputs()
    images = [
        inputs["image"],
        get_dummy_inputs(seed=1)["image"],
        get_dummy_inputs(seed=2)["image"],
    ]
    prompts = ["the cat on the left", "a dog", "the glass of water"]
    singles = [pipe(**{**inputs, "image": im, "prompt": p}) for im, p in zip(images, prompts)]
    for batch_size in (2, 3):
        batched = pipe(**{**inputs, "image": images, "prompt": prompts, "batch_size": batch_size})
        assert batched.alpha.shape == (3, 40, 56, 1)
        for i, single in enumerate(singles):
            for field in FIELDS:
                np.testing.assert_allclose(getattr(batched, field)[i], getattr(single, field)[0], atol=1e-5)


def test_several_prompts_encode_the_image_once(pipe):
    inputs = get_dummy_inputs()
    prompts = ["the cat on the left", "a dog", "the glass of water"]
    calls = []
    original = pipe.vae.encode
    pipe.vae.encode = lambda *a, **k: calls.append(a[0].shape[0]) or original(*a, **k)
    try:
        several = pipe(**{**inputs, "prompt": prompts, "batch_size": 3})
    finally:
        del pipe.vae.encode
    assert calls == [1]
    assert several.alpha.shape == (3, 40, 56, 1)
    for i, prompt in enumerate(prompts):
        single = pipe(**{**inputs, "prompt": prompt})
        np.testing.assert_allclose(several.alpha[i], single.alpha[0], atol=1e-5)


def test_prompt_embeds_stand_for_the_prompts(pipe, reference):
    inputs = get_dummy_inputs()
    embeds = pipe.encode_prompt([inputs.pop("prompt"), "the dog"])
    both = pipe(**inputs, prompt_embeds=embeds)
    np.testing.assert_allclose(both.alpha[:1], reference.alpha, atol=1e-6, rtol=0)
    other = pipe(**{**get_dummy_inputs(), "prompt": "the dog"})
    np.testing.assert_allclose(both.alpha[1:], other.alpha, atol=1e-6, rtol=0)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({}, "exactly one of `prompt` and `prompt_embeds`"),
        ({"prompt": "a", "prompt_embeds": torch.zeros(1, 4, 8)}, "exactly one of"),
        ({"prompt_embeds": torch.zeros(4, 8)}, r"must be \(P, L, D\)"),
    ],
)
def test_prompt_or_prompt_embeds_is_checked(pipe, kwargs, message):
    with pytest.raises(ValueError, match=message):
        pipe(torch.rand(1, 3, 16, 16), **kwargs)


def test_prompt_forms(pipe):
    inputs = get_dummy_inputs()
    a, b = inputs["image"], get_dummy_inputs(seed=1)["image"]
    shared = pipe(**{**inputs, "image": [a, b], "prompt": "a dog"})
    per_image = pipe(**{**inputs, "image": [a, b], "prompt": ["a dog", "a dog"]})
    np.testing.assert_array_equal(shared.alpha, per_image.alpha)
    nested = pipe(**{**inputs, "image": [a, b], "prompt": [["a dog", "a cat"], "a dog"]})
    assert nested.alpha.shape == (
        3,
        40,
        56,
        1,
    )  # image-major: (a, dog), (a, cat), (b, dog)
    np.testing.assert_allclose(nested.alpha[0], shared.alpha[0], atol=1e-5)
    np.testing.assert_allclose(nested.alpha[2], shared.alpha[1], atol=1e-5)


@pytest.mark.parametrize(
    "prompt, error, message",
    [
        ("", ValueError, "empty prompt"),
        ("   ", ValueError, "empty prompt"),
        (["a dog", ""], ValueError, "empty prompt"),
        ([], ValueError, "no prompt"),
        (["a", "b", "c"], ValueError, "3 entries for 2 images"),
        (None, ValueError, "exactly one of `prompt` and `prompt_embeds`"),
        ([["a dog", 3], "b"], TypeError, "must be strings"),
    ],
)
def test_bad_prompts_are_refused(pipe, prompt, error, message):
    inputs = get_dummy_inputs()
    images = [inputs["image"], inputs["image"]] if prompt not in ("", "   ", []) else inputs["image"]
    with pytest.raises(error, match=message):
        pipe(**{**inputs, "image": images, "prompt": prompt})


@pytest.mark.parametrize(
    "argument, value, message",
    [
        ("output_type", "latent", "output_type"),
        ("batch_size", 0, "batch_size"),
        ("processing_resolution", -8, "processing_resolution"),
        ("resample_method_input", "lanczos", "resample_method_input"),
        ("num_inference_steps", 4, "single UNet step"),
    ],
)
def test_bad_arguments_are_refused(pipe, argument, value, message):
    with pytest.raises(ValueError, match=message):
        pipe(**{**get_dummy_inputs(), argument: value})


def test_long_prompts_are_truncated_with_a_warning(pipe):
    inputs = get_dummy_inputs()
    words = " ".join(["the small cat"] * 40)  # well over 77 tokens
    logger = diffusers_logging.get_logger("diffusers_matte.pipelines.soft_grounding.pipeline_soft_grounding")
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logger.addHandler(handler)
    try:
        long = pipe(**{**inputs, "prompt": words + " near a window"})
        longer = pipe(**{**inputs, "prompt": words + " next to a dog on the grass"})
    finally:
        logger.removeHandler(handler)
    assert any("truncated" in r.getMessage() and "window" in r.getMessage() for r in records)
    np.testing.assert_array_equal(long.alpha, longer.alpha)  # both cut at the same 77 tokens


def test_any_size_aspect_and_input_kind(pipe):
    rng = np.random.default_rng(0)
    wide = rng.integers(0, 256, (18, 50, 3), dtype=np.uint8)
    tall = PIL.Image.fromarray(rng.integers(0, 256, (45, 21), dtype=np.uint8))  # grayscale
    rgba = PIL.Image.fromarray(rng.integers(0, 256, (33, 33, 4), dtype=np.uint8))
    out = pipe([wide, tall, rgba], "a dog", processing_resolution=32)
    assert [a.shape for a in out.alpha] == [(18, 50, 1), (45, 21, 1), (33, 33, 1)]
    # Batches join only images whose padded grids agree; the result does not depend on the grouping.
    mixed = pipe([wide, tall, rgba, wide], "a dog", processing_resolution=32, batch_size=2)
    for i, j in ((0, 0), (1, 1), (2, 2), (3, 0)):
        np.testing.assert_allclose(mixed.alpha[i], out.alpha[j], atol=1e-5)
    single = pipe(wide, "a dog", processing_resolution=32)
    np.testing.assert_allclose(out.alpha[0], single.alpha[0], atol=1e-5)
    sixteen = pipe(wide.astype(np.uint16) * 257, "a dog", processing_resolution=32)
    np.testing.assert_allclose(sixteen.alpha, single.alpha, atol=1e-5)
    with pytest.raises(ValueError, match="mode 'La', which PIL cannot convert"):
        pipe(PIL.Image.new("La", (8, 8)), "a dog")


def test_processing_resolution_and_match_input_resolution(pipe):
    inputs = get_dummy_inputs()
    processed = pipe(**inputs, match_input_resolution=False)
    assert processed.alpha.shape == (1, 23, 32, 1)  # 40x56 with its longest edge at 32
    native = pipe(**{**inputs, "processing_resolution": 0})
    assert native.alpha.shape == (1, 40, 56, 1)


def test_encode_prompt_works_in_isolation(pipe):
    features = pipe.encode_prompt(["a dog", "the cat on the left"])
    tokens = pipe.tokenizer(
        ["a dog", "the cat on the left"],
        padding="max_length",
        max_length=77,
        truncation=True,
        return_tensors="pt",
    ).input_ids
    with torch.no_grad():
        expected = pipe.text_adapter(pipe.text_encoder(tokens)[0])
    torch.testing.assert_close(features, expected)
    torch.testing.assert_close(pipe.encode_prompt(["a dog", "the cat on the left"], batch_size=1), expected)


def test_save_load_local(pipe, reference, tmp_path):
    pipe.save_pretrained(tmp_path, safe_serialization=False)
    loaded = SoftGroundingMattingPipeline.from_pretrained(tmp_path)
    loaded.set_progress_bar_config(disable=True)
    assert isinstance(loaded.unet, MatteUNet2DConditionModel)
    assert isinstance(loaded.text_adapter, TextAdapter)
    assert isinstance(loaded.matting_decoder, MattingDecoder)
    assert loaded.refiner is None  # optional component stays None
    _assert_outputs_close(loaded(**get_dummy_inputs()), reference, atol=1e-6)


def test_save_load_with_refiner_and_refiner_hook(tmp_path, monkeypatch):
    pipe = _pipe(refiner=True)
    seen = []
    pipe.refiner.register_forward_pre_hook(lambda module, args, kwargs: seen.append(kwargs), with_kwargs=True)
    out = pipe(**get_dummy_inputs())
    assert out.alpha.shape == (1, 40, 56, 1) and out.alpha.min() >= 0 and out.alpha.max() <= 1
    assert len(seen) == 1
    assert seen[0]["pixel_values"].shape == (
        1,
        3,
        40,
        56,
    )  # the image at the output size, in [-1, 1]
    assert seen[0]["alpha"].shape == (1, 1, 23, 32) and seen[0]["context"].shape[-2:] == (23, 32)
    pipe.save_pretrained(tmp_path)
    # from_pretrained imports the component modules model_index.json names (diffusers needs them imported).
    monkeypatch.delitem(sys.modules, "diffusers_matte.models.sparse_refiner")
    loaded = SoftGroundingMattingPipeline.from_pretrained(tmp_path)
    loaded.set_progress_bar_config(disable=True)
    assert type(loaded.refiner).__module__ == SparseMatteRefiner.__module__ in sys.modules
    _assert_outputs_close(loaded(**get_dummy_inputs()), out, atol=1e-6)


def test_to_dtype():
    pipe = _pipe()
    pipe.to(torch.bfloat16)
    dtypes = {name: c.dtype for name, c in pipe.components.items() if isinstance(c, torch.nn.Module)}
    assert set(dtypes.values()) == {torch.bfloat16}, dtypes
    out = pipe(**get_dummy_inputs())
    assert out.alpha.dtype == np.float32 and np.isfinite(out.alpha).all()
    reference = _pipe()(**get_dummy_inputs())
    assert np.abs(out.alpha - reference.alpha).max() < 0.05


def test_model_cpu_offload_hooks_on_cpu():
    # The offload mechanics (a hook per model, triggered by forward *and* vae.encode) run with a CPU execution
    # device too; the accelerator test below checks the real transfers.
    pipe = _pipe()
    reference = pipe(**get_dummy_inputs())
    models = {n for n, c in pipe.components.items() if isinstance(c, torch.nn.Module)}
    assert models <= set(pipe.model_cpu_offload_seq.split("->"))
    pipe.enable_model_cpu_offload(device="cpu")
    assert all(hasattr(getattr(pipe, n), "_hf_hook") for n in models)
    for _ in range(2):
        _assert_outputs_close(pipe(**get_dummy_inputs()), reference, atol=1e-6)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="model CPU offload needs an accelerator")
def test_model_cpu_offload_twice():
    pipe = _pipe()
    reference = pipe(**get_dummy_inputs())
    pipe.enable_model_cpu_offload()
    for _ in range(2):
        _assert_outputs_close(pipe(**get_dummy_inputs()), reference, atol=1e-3)
    assert all(c.device.type == "cpu" for c in pipe.components.values() if isinstance(c, torch.nn.Module))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="fp16 inference needs an accelerator")
def test_float16_on_accelerator():
    pipe = _pipe().to("cuda", torch.float16)
    out = pipe(**get_dummy_inputs())
    reference = _pipe()(**get_dummy_inputs())
    assert np.isfinite(out.alpha).all() and np.abs(out.alpha - reference.alpha).max() < 0.05
