# Copyright 2026 The diffusers-matte authors. Licensed under the Apache License, Version 2.0.
"""Tiny, offline, seeded builders for tests, docs and outside test suites.

Everything here builds from configs with random weights: nothing is downloaded.
"""

import functools
from typing import Any, Optional, Sequence


def get_dummy_unet_init_dict(**overrides: Any) -> dict:
    """Config of a tiny Stable-Diffusion-shaped UNet (4 levels, SD 1.x block layout).

    The layout mirrors SD 1.5 (three cross-attention down blocks and a plain one, the mirror image on the
    way up, a cross-attention mid block, two layers per block) so that BK-SDM pruning
    (`MatteUNet2DConditionModel.from_teacher`) applies to it, at a size that runs in milliseconds on CPU.
    Keyword arguments override entries, e.g. `prediction_head="region"`.
    """
    config = {
        "sample_size": 16,
        "in_channels": 4,
        "out_channels": 4,
        "down_block_types": (
            "CrossAttnDownBlock2D",
            "CrossAttnDownBlock2D",
            "CrossAttnDownBlock2D",
            "DownBlock2D",
        ),
        "up_block_types": (
            "UpBlock2D",
            "CrossAttnUpBlock2D",
            "CrossAttnUpBlock2D",
            "CrossAttnUpBlock2D",
        ),
        "block_out_channels": (16, 32, 32, 32),
        "layers_per_block": 2,
        "norm_num_groups": 8,
        "cross_attention_dim": 24,
        "attention_head_dim": 2,
    }
    config.update(overrides)
    return config


# A small corpus of referring expressions: enough for a byte-level BPE to learn common English sub-words.
_TOKENIZER_CORPUS = (
    "the woman on the left holding a glass of water",
    "a man in a black suit standing next to the car",
    "the dog with long fluffy hair lying on the grass",
    "a cat sitting on the wooden chair near the window",
    "the girl with curly blonde hair and a red dress",
    "a transparent plastic bottle on the white table",
    "the smoke rising from the chimney of the house",
    "the person wearing a veil at the back of the room",
    "a spider web glistening with drops of morning dew",
    "the bride in the middle of the picture with flowers",
    "a child riding a bicycle down the street",
    "the horse running across the field on the right",
    "a wine glass filled with red wine next to the plate",
    "the old man with a grey beard reading a newspaper",
    "a bird with colourful feathers perched on a branch",
    "the fur of the lion walking through tall grass",
    "a lamp with a glass shade standing in the corner",
    "the boy in the blue shirt playing with a ball",
    "two people walking under an umbrella in the rain",
    "a plant with thin leaves in a ceramic pot",
    "the rightmost person, the leftmost animal, the biggest object",
    "someone's hand holding a phone; the teddy bear's ear",
    "3 apples, 2 oranges and 1 banana in a basket",
)


def _learn_bpe_merges(words: dict[tuple[str, ...], int], num_merges: int) -> list[tuple[str, str]]:
    """Plain BPE learning: repeatedly merge the most frequent adjacent pair (ties: the smallest pair)."""
    from collections import Counter

    merges = []
    for _ in range(num_merges):
        pairs = Counter()
        for word, count in words.items():
            for pair in zip(word[:-1], word[1:]):
                pairs[pair] += count
        if not pairs:
            break
        best = min(pairs, key=lambda pair: (-pairs[pair], pair))
        if pairs[best] < 2:
            break
        merges.append(best)
        merged = {}
        for word, count in words.items():
            out, i = [], 0
            while i < len(word):
                if word[i : i + 2] == best:
                    out.append(word[i] + word[i + 1])
                    i += 2
                else:
                    out.append(word[i])
                    i += 1
            merged[tuple(out)] = merged.get(tuple(out), 0) + count
        words = merged
    return merges


@functools.lru_cache(maxsize=4)
def _dummy_bpe(num_merges: int, corpus: tuple[str, ...]) -> tuple[dict, list]:
    """Vocabulary and merges of the offline tokenizer (learned once per process and corpus)."""
    from collections import Counter

    from tokenizers import pre_tokenizers
    from transformers import CLIPTokenizer

    template = CLIPTokenizer().backend_tokenizer  # CLIP's normaliser and pre-tokeniser
    words = Counter()
    for text in corpus:
        normalized = template.normalizer.normalize_str(text)
        for word, _ in template.pre_tokenizer.pre_tokenize_str(normalized):
            words[(*word[:-1], word[-1] + "</w>")] += 1
    merges = _learn_bpe_merges(dict(words), num_merges)

    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    symbols = [
        "<|startoftext|>",
        "<|endoftext|>",
        *alphabet,
        *(c + "</w>" for c in alphabet),
    ]
    symbols += [a + b for a, b in merges]
    vocab = {}
    for symbol in symbols:
        vocab.setdefault(symbol, len(vocab))
    return vocab, merges


def get_dummy_tokenizer(
    num_merges: int = 300,
    model_max_length: int = 77,
    corpus: Optional[Sequence[str]] = None,
):
    """A small but real CLIP tokenizer, built offline.

    A byte-level BPE is learned in-process on `corpus` (default: a built-in set of referring expressions), with
    CLIP's own normaliser, pre-tokeniser and `</w>` end-of-word suffix, and wrapped as a transformers
    `CLIPTokenizer`. Every byte, word-final or not, is in the vocabulary, so no text maps to the unknown token.
    With enough merges, every word seen at least twice in the corpus becomes a single token. Deterministic; saves
    and loads with `save_pretrained` / `from_pretrained`.
    """
    from transformers import CLIPTokenizer

    corpus = _TOKENIZER_CORPUS if corpus is None else tuple(corpus)
    vocab, merges = _dummy_bpe(num_merges, corpus)
    return CLIPTokenizer(vocab=dict(vocab), merges=list(merges), model_max_length=model_max_length)


def get_dummy_components(seed: int = 0, refiner: bool = False) -> dict:
    """Tiny, seeded components of `SoftGroundingMattingPipeline` (random weights, nothing downloaded).

    VAE scale factor 2 and a 4-level UNet: sizes are padded to multiples of 16. Models are in eval mode (the
    UNet head, the decoder and the refiner have BatchNorm). `refiner=True` adds a tiny `SparseMatteRefiner`.
    """
    import torch
    from diffusers import AutoencoderKL
    from transformers import CLIPTextConfig, CLIPTextModel

    from .models.matting_decoder import MattingDecoder
    from .models.text_adapter import TextAdapter
    from .models.unet_matte import MatteUNet2DConditionModel

    tokenizer = get_dummy_tokenizer()
    unet_config = get_dummy_unet_init_dict(prediction_head="matte")
    text_dim = unet_config["cross_attention_dim"]
    torch.manual_seed(seed)
    vae = AutoencoderKL(
        block_out_channels=(8, 16),
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 2,
        up_block_types=("UpDecoderBlock2D",) * 2,
        latent_channels=4,
        norm_num_groups=4,
        layers_per_block=1,
        sample_size=32,
    )
    torch.manual_seed(seed)
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=len(tokenizer),
            hidden_size=text_dim,
            intermediate_size=37,
            num_attention_heads=4,
            num_hidden_layers=2,
            max_position_embeddings=tokenizer.model_max_length,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
    )
    torch.manual_seed(seed)
    text_adapter = TextAdapter(embed_dim=text_dim, reduction=4)
    torch.manual_seed(seed)
    unet = MatteUNet2DConditionModel(**unet_config)
    torch.manual_seed(seed)
    matting_decoder = MattingDecoder(
        feature_channels=unet_config["block_out_channels"][0],
        aligned_channels=8,
        convstream_channels=(4, 8, 8),
        fusion_channels=(8, 8, 4, 4),
        head_channels=4,
    )
    sparse_refiner = None
    if refiner:
        from .models.sparse_refiner import SparseMatteRefiner

        torch.manual_seed(seed)
        sparse_refiner = SparseMatteRefiner(context_channels=4, hidden_channels=(4,))
    components = {
        "vae": vae,
        "text_encoder": text_encoder,
        "tokenizer": tokenizer,
        "text_adapter": text_adapter,
        "unet": unet,
        "matting_decoder": matting_decoder,
        "refiner": sparse_refiner,
    }
    for component in components.values():
        if isinstance(component, torch.nn.Module):
            component.eval()
    return components


def get_dummy_inputs(device: str = "cpu", seed: int = 0) -> dict:
    """Seeded call arguments for the tiny pipeline: one 40x56 RGB image in [0, 1] (NCHW), one prompt, processed
    at 32 px (so the UNet sees a 16x16 latent after padding), one step, numpy output."""
    import torch

    generator = torch.Generator("cpu").manual_seed(seed)
    image = torch.rand(1, 3, 40, 56, generator=generator).to(device)
    return {
        "image": image,
        "prompt": "the cat on the left",
        "processing_resolution": 32,
        "num_inference_steps": 1,
        "output_type": "np",
    }
