"""training/caption_dataset.py and training/make_refcoco_alpha.py with tiny random BLIP-2 / ViTMatte (no download)."""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from matting_layouts import make_am2k, make_refcoco
from PIL import Image
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import (
    Blip2Config,
    Blip2ForConditionalGeneration,
    Blip2Processor,
    BlipImageProcessor,
    PreTrainedTokenizerFast,
    VitDetConfig,
    VitMatteConfig,
    VitMatteForImageMatting,
    VitMatteImageProcessor,
)

from diffusers_matte.data.am2k import load_am2k
from diffusers_matte.data.refcoco import load_refcoco, segmentation_to_mask
from diffusers_matte.data.targets import trimap_from_mask

ROOT = Path(__file__).resolve().parents[2]


def _script(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "training" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


WORDS = [
    "<pad>",
    "<unk>",
    "</s>",
    "question:",
    "describe",
    "the",
    "appearance",
    "of",
    "object",
    "in",
]
WORDS += ["image.", "answer:", "a", "red", "ball", "cat", "dog", "is", "on", "grass"]


@pytest.fixture(scope="module")
def tiny_blip2(tmp_path_factory):
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(WORDS)}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token="<pad>",
        unk_token="<unk>",
        eos_token="</s>",
        bos_token="</s>",
    )
    processor = Blip2Processor(
        image_processor=BlipImageProcessor(size={"height": 32, "width": 32}),
        tokenizer=tokenizer,
        num_query_tokens=4,
    )
    image_token = tokenizer.convert_tokens_to_ids("<image>")
    layer = dict(intermediate_size=37, num_hidden_layers=1, num_attention_heads=2)
    config = Blip2Config(
        vision_config=dict(hidden_size=32, image_size=32, patch_size=16, **layer),
        qformer_config=dict(hidden_size=32, encoder_hidden_size=32, vocab_size=99, **layer),
        text_config=dict(
            model_type="opt",
            vocab_size=len(tokenizer),
            hidden_size=16,
            ffn_dim=37,
            num_hidden_layers=1,
            num_attention_heads=2,
            word_embed_proj_dim=16,
            max_position_embeddings=64,
            pad_token_id=0,
            bos_token_id=2,
            eos_token_id=2,
        ),
        num_query_tokens=4,
        image_token_index=image_token,
    )
    torch.manual_seed(0)
    model = Blip2ForConditionalGeneration(config).eval()
    path = tmp_path_factory.mktemp("tiny_blip2")
    model.save_pretrained(path)
    processor.save_pretrained(path)
    return path, model, processor


@pytest.fixture(scope="module")
def tiny_vitmatte(tmp_path_factory):
    backbone = VitDetConfig(
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        mlp_ratio=2,
        image_size=32,
        pretrain_image_size=32,
        patch_size=16,
        num_channels=4,
        out_features=["stage1"],
    )
    config = VitMatteConfig(
        backbone_config=backbone,
        hidden_size=32,
        convstream_hidden_sizes=[4, 8, 16],
        fusion_hidden_sizes=[16, 8, 8, 4],
    )
    torch.manual_seed(0)
    model = VitMatteForImageMatting(config).eval()
    processor = VitMatteImageProcessor()
    path = tmp_path_factory.mktemp("tiny_vitmatte")
    model.save_pretrained(path)
    processor.save_pretrained(path)
    return path, model, processor


def test_caption_images_strips_the_prompt_and_is_deterministic(tiny_blip2):
    _, model, processor = tiny_blip2
    caption = _script("caption_dataset")
    prompt = "question: describe the appearance of the object in the image. answer:"
    images = [Image.fromarray(np.full((20, 30, 3), v, np.uint8)) for v in (0, 255)]
    first = caption.caption_images(images, model, processor, prompt, max_new_tokens=4)
    assert first == caption.caption_images(images, model, processor, prompt, max_new_tokens=4)
    assert len(first) == 2 and all(isinstance(c, str) and "question:" not in c for c in first)
    assert all(len(c.split()) <= 4 for c in first)


def test_caption_dataset_command_writes_loadable_side_file(tmp_path, tiny_blip2):
    model_path, _, _ = tiny_blip2
    caption = _script("caption_dataset")
    make_am2k(tmp_path / "data")
    out = tmp_path / "captions.json"
    args = [
        "--dataset",
        "am2k",
        "--data_dir",
        str(tmp_path / "data"),
        "--split",
        "train",
        "--output_file",
        str(out),
    ]
    args += [
        "--model_name_or_path",
        str(model_path),
        "--batch_size",
        "2",
        "--max_new_tokens",
        "3",
        "--device",
        "cpu",
    ]
    args += [
        "--cache_dir",
        str(tmp_path / "cache"),
        "--prompt",
        "question: describe the object answer:",
    ]
    captions = caption.main(args)
    assert set(captions) == {"m_0000000a", "m_0000000b", "m_0000000c"}
    assert json.loads(out.read_text()) == captions
    ds = load_am2k(
        tmp_path / "data",
        split="train",
        captions_file=out,
        cache_dir=str(tmp_path / "cache2"),
    )
    assert [row["texts"] for row in ds] == [[captions[i]] for i in ds["image_id"]]
    with pytest.raises(SystemExit, match="--resume"):
        caption.main(args)
    out.write_text(json.dumps({"m_0000000a": "kept caption"}))
    resumed = caption.main(args + ["--resume"])
    assert resumed["m_0000000a"] == "kept caption" and len(resumed) == 3


def test_pseudo_alpha_keeps_known_regions_and_feeds_the_loader(tmp_path, tiny_vitmatte):
    _, model, processor = tiny_vitmatte
    script = _script("make_refcoco_alpha")
    fixture = make_refcoco(tmp_path)
    counts = script.make_pseudo_alphas(tmp_path, model, processor, splits=("train",), kernel_size=3)
    assert counts == {"written": 2, "kept": 0}
    ann = next(a for a in fixture["instances"]["annotations"] if a["id"] == 102)
    mask = segmentation_to_mask(ann["segmentation"], 16, 24)
    trimap = trimap_from_mask(mask, 3)
    alpha = np.asarray(Image.open(tmp_path / "refcoco" / "pseudo_alpha" / "102.png"))
    assert alpha.shape == (16, 24)
    assert (alpha[trimap == 255] == 255).all() and (alpha[trimap == 0] == 0).all()
    assert ((alpha[trimap == 128] > 0) & (alpha[trimap == 128] < 255)).any()  # the model fills the band
    ds = load_refcoco(tmp_path, cache_dir=str(tmp_path / "cache"))
    assert len(ds["train"]) == 2
    assert script.make_pseudo_alphas(tmp_path, model, processor, kernel_size=3) == {
        "written": 0,
        "kept": 2,
    }


def test_pseudo_alpha_command(tmp_path, tiny_vitmatte):
    model_path, _, _ = tiny_vitmatte
    script = _script("make_refcoco_alpha")
    make_refcoco(tmp_path)
    out = tmp_path / "alphas"
    args = [
        "--data_dir",
        str(tmp_path),
        "--splits",
        "train",
        "testA",
        "--output_dir",
        str(out),
    ]
    counts = script.main(
        args
        + [
            "--model_name_or_path",
            str(model_path),
            "--kernel_size",
            "3",
            "--device",
            "cpu",
        ]
    )
    assert counts["written"] == 3 and sorted(p.name for p in out.iterdir()) == [
        "101.png",
        "102.png",
        "103.png",
    ]
