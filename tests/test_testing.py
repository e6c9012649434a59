# Copyright 2026 The diffusers-matte authors. Licensed under the Apache License, Version 2.0.
"""The offline builders of `diffusers_matte.testing`."""

from diffusers_matte.testing import get_dummy_tokenizer


def test_dummy_tokenizer_learns_whole_words_from_a_given_corpus():
    corpus = [
        "the left red dandelion",
        "a small blue furball",
        "the dandelion below the furball",
    ] * 2
    default = get_dummy_tokenizer()
    learned = get_dummy_tokenizer(num_merges=500, corpus=corpus)
    assert learned.tokenize("the left dandelion") == [
        "the</w>",
        "left</w>",
        "dandelion</w>",
    ]
    assert len(default.tokenize("dandelion")) > 1
    # a word never seen still tokenizes, into smaller pieces, without the unknown token
    ids = learned("xylophone")["input_ids"]
    assert learned.unk_token_id not in ids[1:-1] and len(ids) > 3


def test_dummy_tokenizer_is_deterministic_and_round_trips(tmp_path):
    corpus = ["a glass bubble on the right"] * 2
    first = get_dummy_tokenizer(num_merges=100, corpus=corpus)
    first.save_pretrained(tmp_path)
    from transformers import CLIPTokenizer

    again = CLIPTokenizer.from_pretrained(tmp_path)
    text = "the glass bubble on the right"
    assert again(text)["input_ids"] == first(text)["input_ids"]
    assert get_dummy_tokenizer(num_merges=100, corpus=list(corpus)).get_vocab() == first.get_vocab()
