"""The stage-1 lever benchmark's own pieces: whole-image batches and the pooled-text base."""

import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import stage1_levers  # noqa: E402


def test_image_batches_keep_each_image_whole_and_follow_the_epoch():
    image_ids = [f"img{i // 3}" for i in range(30)] + ["single"]  # ten images of three rows and one of one
    sampler = stage1_levers.ImageBatchSampler(image_ids, batch_size=4, seed=0)
    batches = list(sampler)
    for batch in batches:
        assert len(batch) >= 4
        images = {image_ids[i] for i in batch}
        assert sum(image_ids.count(image) for image in images) == len(batch)  # every row of each image it holds
    assert len({i for batch in batches for i in batch}) == sum(map(len, batches))  # no row twice
    assert list(stage1_levers.ImageBatchSampler(image_ids, 4, 0)) == batches  # seeded
    sampler.set_epoch(1)
    assert list(sampler) != batches


def test_pooled_text_base_adds_only_the_new_embedding(tmp_path):
    from diffusers import UNet2DConditionModel

    from diffusers_matte.testing import get_dummy_unet_init_dict

    base = tmp_path / "base"
    torch.manual_seed(0)
    UNet2DConditionModel(**get_dummy_unet_init_dict()).save_pretrained(base / "unet")
    for name in ("vae", "tokenizer", "scheduler", "text_encoder"):
        (base / name).mkdir()
    (base / "model_index.json").write_text("{}")
    assert stage1_levers.variant_base(base, tmp_path / "out", pooled_text=False) == base
    folder = stage1_levers.variant_base(base, tmp_path / "out", pooled_text=True)
    pooled = UNet2DConditionModel.from_pretrained(folder, subfolder="unet")
    original = UNet2DConditionModel.from_pretrained(base, subfolder="unet").state_dict()
    assert pooled.config.addition_embed_type == "text"
    state = pooled.state_dict()
    assert {k for k in state if k not in original} and all(
        k.startswith("add_embedding.") for k in state if k not in original
    )
    assert all(np.array_equal(state[k].numpy(), v.numpy()) for k, v in original.items())
    assert (folder / "vae").resolve() == (base / "vae").resolve()
