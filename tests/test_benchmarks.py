"""The replication benchmark's own logic: its grounding probe, its recipe guard, and (slow) the whole recipe."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import fast_mode_synthetic  # noqa: E402
import grounding_probe  # noqa: E402
import synthetic_ablation  # noqa: E402
import synthetic_base_model  # noqa: E402


@pytest.fixture(scope="module")
def rows(tmp_path_factory):
    from diffusers_matte.data.synthetic import load_synthetic_matting

    cache = tmp_path_factory.mktemp("synthetic_cache")
    return load_synthetic_matting(1, 2, seed=3, image_size=64, cache_dir=str(cache))["test"]


def _alpha_of(rows):
    """An oracle predictor: for each prompt, the alpha of the instance that owns the expression."""
    owner = {text: np.asarray(r["alpha"], np.float32) / 255.0 for r in rows for text in r["texts"]}
    return lambda image, prompts: {"oracle": [owner[p] for p in prompts]}


def test_probe_of_an_oracle_sees_only_the_referred_instance(rows):
    means = grounding_probe.probe(rows, _alpha_of(rows))["oracle"]
    assert means["referred"] > 0.1
    assert means["others"] == 0.0 and means["background"] == 0.0
    assert means["sad"] == pytest.approx(0.0, abs=1e-9)


def test_probe_sad_of_an_empty_matte_is_the_alpha_mass(rows):
    def zero(image, prompts):
        return {"zero": [np.zeros(image.size[::-1], np.float32)] * len(prompts)}

    means = grounding_probe.probe(rows, zero)["zero"]
    pairs = [np.asarray(r["alpha"], np.float64).sum() / 255 / 1000 for r in rows for _ in r["texts"]]
    assert means["sad"] == pytest.approx(np.mean(pairs))
    assert means["referred"] == means["others"] == means["background"] == 0.0


def test_probe_by_expression_splits_the_same_pairs_by_text_index(rows):
    def referred_half(image, prompts):  # 0.5 on the referred instance for the first text, 1.0 for the others
        owner = _alpha_of(rows)(image, prompts)["oracle"]
        scale = [0.5 if any(p == r["texts"][0] for r in rows) else 1.0 for p in prompts]
        return {"half": [(alpha > 0) * s for alpha, s in zip(owner, scale)]}

    by_kind = grounding_probe.probe(rows, referred_half, by_expression=True)["half"]
    assert sorted(by_kind) == list(range(len(rows[0]["texts"])))
    assert by_kind[0]["referred"] == pytest.approx(0.5) and by_kind[1]["referred"] == pytest.approx(1.0)
    overall = grounding_probe.probe(rows, referred_half)["half"]
    assert overall["referred"] == pytest.approx(np.mean([means["referred"] for means in by_kind.values()]))


def test_first_images_keeps_every_row_of_the_first_images_only(rows):
    first = list(dict.fromkeys(rows["image_id"]))[0]
    kept = grounding_probe.first_images(rows, 1)
    assert set(kept["image_id"]) == {first} and len(kept) == rows["image_id"].count(first)
    assert len(grounding_probe.first_images(rows, 10)) == len(rows)


def test_by_kind_names_the_expression_kinds_and_averages_over_them():
    means = {0: {"referred": 1.0, "others": 0.5}, 1: {"referred": 3.0, "others": 1.5}}
    named = grounding_probe.by_kind(means)
    assert list(named) == ["keyword", "basic", "all"]
    assert named["basic"] == means[1] and named["all"] == {"referred": 2.0, "others": 1.0}


def test_teacher_predictor_refuses_an_unknown_output():
    with pytest.raises(ValueError, match="P\\(foreground\\)"):
        grounding_probe.teacher_predictor("unused", "unused", 32, outputs=("alpha",))


def test_recipe_guard_refuses_a_work_dir_made_with_other_sizes(tmp_path):
    path = tmp_path / "recipe.json"
    synthetic_ablation.check_recipe(path, {"teacher_steps": 10, "batch_size": 4})
    assert json.loads(path.read_text()) == {"teacher_steps": 10, "batch_size": 4}
    synthetic_ablation.check_recipe(path, {"teacher_steps": 10, "batch_size": 4})  # same: resumes
    with pytest.raises(SystemExit, match="teacher_steps.*10, 20.*new --work_dir"):
        synthetic_ablation.check_recipe(path, {"teacher_steps": 20, "batch_size": 4})


def test_recipe_guard_resumes_a_recipe_with_tuples(tmp_path):
    # the UNet config holds tuples, which the file reads back as lists: still the same recipe
    path = tmp_path / "recipe.json"
    recipe = {"teacher_steps": 10, "unet": {"block_out_channels": (32, 64)}}
    synthetic_ablation.check_recipe(path, recipe)
    synthetic_ablation.check_recipe(path, recipe)


def test_demo_card_says_whether_the_grounding_score_can_reject_a_prompt():
    without = synthetic_ablation._score_limits(0.0)
    assert "cannot tell a prompt that names nothing" in without
    assert "0.25" in synthetic_ablation._score_limits(0.25) and "cannot" not in synthetic_ablation._score_limits(0.25)


def _fake_model(folder: Path, weights: bytes) -> Path:
    (folder / "unet").mkdir(parents=True)
    (folder / "unet" / "diffusion_pytorch_model.safetensors").write_bytes(weights)
    (folder / "vae").mkdir()
    (folder / "vae" / "config.json").write_text("{}")
    return folder


def test_demo_encoder_install_replaces_the_cards_earlier_note(tmp_path, monkeypatch):
    demo = _fake_model(tmp_path / "demo", b"student")
    (demo / "README.md").write_text("# card\n")
    monkeypatch.setattr(fast_mode_synthetic, "DEMO_DIR", demo)
    tiny = _fake_model(tmp_path / "tiny", b"tiny")
    fast_mode_synthetic.install_demo_encoder(tiny, demo, "0.010 [0.001, 0.020]")
    fast_mode_synthetic.install_demo_encoder(tiny, demo, "0.004 [-0.001, 0.009]")
    card = (demo / "README.md").read_text()
    assert card.startswith("# card\n")
    assert card.count(fast_mode_synthetic.CARD_NOTE_START) == 1
    assert "SAD 0.004 [-0.001, 0.009]" in card and "0.010" not in card
    assert (demo / "vae_tiny" / "config.json").exists()


def test_demo_encoder_install_refuses_another_model(tmp_path, monkeypatch):
    demo = _fake_model(tmp_path / "demo", b"student")
    monkeypatch.setattr(fast_mode_synthetic, "DEMO_DIR", demo)
    other = _fake_model(tmp_path / "other", b"another student")
    with pytest.raises(SystemExit, match="is not"):
        fast_mode_synthetic.install_demo_encoder(other, other, "0.0")


@pytest.mark.slow
def test_quick_recipe_runs_end_to_end_and_resumes(tmp_path):
    results = tmp_path / "ablation.md"
    argv = ["--work_dir", str(tmp_path / "work"), "--quick", "--results", str(results)]
    synthetic_ablation.main(argv + ["--teacher_steps", "3"])
    text = results.read_text()
    assert "--quick --teacher_steps 3" in text
    for row in (
        "trivial baseline",
        "(a) direct",
        "(b) localisation",
        "(c) full framework",
        "(d) = (c) without text-to-image",
        "P(foreground)",
        "(c) - (d)",
        "latent grid",
        "read its caption",
        "DDPM epsilon loss",
    ):
        assert row in text
    timings = json.loads((tmp_path / "work" / "timings.json").read_text())
    synthetic_ablation.main(argv + ["--teacher_steps", "3"])  # every stage is found done
    assert json.loads((tmp_path / "work" / "timings.json").read_text()) == timings
    with pytest.raises(SystemExit, match="another recipe"):
        synthetic_ablation.main(argv)

    # fast mode on the finished work folder: tiny encoder, fine-tuned pipeline, paired comparison
    import fast_mode_synthetic

    fast = tmp_path / "fast.md"
    fast_argv = ["--work_dir", str(tmp_path / "work"), "--out_dir", str(tmp_path / "fast"), "--results", str(fast)]
    fast_mode_synthetic.main(fast_argv + ["--encoder_steps", "2", "--finetune_steps", "2"])
    text = fast.read_text()
    for row in ("trivial baseline", "default: (c)", "swapped in, not fine-tuned", "fast: tiny encoder", "Paired SAD"):
        assert row in text
    from diffusers import AutoencoderTiny

    from diffusers_matte import SoftGroundingMattingPipeline

    assert isinstance(
        SoftGroundingMattingPipeline.from_pretrained(tmp_path / "fast" / "pipeline_fast").vae, AutoencoderTiny
    )


@pytest.fixture(scope="module")
def layout_rows(tmp_path_factory):
    from diffusers_matte.data.synthetic import SceneLayout, load_synthetic_matting

    cache = str(tmp_path_factory.mktemp("layout_cache"))
    layout = SceneLayout(3, 2.6, 1 / 3, paraphrase=True)
    return load_synthetic_matting(4, 0, image_size=64, cache_dir=cache, layout=layout)["train"]


def test_base_model_is_a_stable_diffusion_folder_and_resumes(layout_rows, tmp_path):
    from diffusers import StableDiffusionPipeline

    base = tmp_path / "base"
    steps = dict(vae_steps=1, clip_steps=2, unet_steps=1, batch_size=4)
    seconds = synthetic_base_model.build_base_model(base, layout_rows, **steps)
    assert set(seconds) == {"tokenizer", "vae", "text_encoder", "scheduler", "unet"}
    pipe = StableDiffusionPipeline.from_pretrained(base, safety_checker=None)
    assert pipe.scheduler.config.beta_schedule == "scaled_linear"
    assert pipe.tokenizer.model_max_length == synthetic_base_model.MAX_TOKENS
    stamp = (base / "unet" / "config.json").stat().st_mtime_ns
    assert synthetic_base_model.build_base_model(base, layout_rows, **steps) == {}
    assert (base / "unet" / "config.json").stat().st_mtime_ns == stamp

    random_unet = synthetic_base_model.without_diffusion_pretraining(base, tmp_path / "d")
    other = StableDiffusionPipeline.from_pretrained(random_unet, safety_checker=None)
    for a, b in zip(pipe.text_encoder.parameters(), other.text_encoder.parameters()):
        assert torch.equal(a, b)
    assert not all(torch.equal(a, b) for a, b in zip(pipe.unet.parameters(), other.unet.parameters()))

    # the caption diagnostic reads the scheduler's target
    assert pipe.scheduler.config.prediction_type == "epsilon"
    use = synthetic_base_model.caption_use(base, layout_rows, timesteps=(100, 900))
    assert set(use) == {100, 900}
    assert all(np.isfinite(v["own"]) and np.isfinite(v["other"]) and v["own"] >= 0 for v in use.values())


def test_v_prediction_base_trains_on_the_velocity(layout_rows, tmp_path):
    steps = dict(vae_steps=1, clip_steps=1, unet_steps=2, batch_size=4)
    base = tmp_path / "v"
    synthetic_base_model.build_base_model(base, layout_rows, prediction_type="v_prediction", **steps)
    config = json.loads((base / "scheduler" / "scheduler_config.json").read_text())
    assert config["prediction_type"] == "v_prediction"
    use = synthetic_base_model.caption_use(base, layout_rows, timesteps=(500,))
    assert np.isfinite(use[500]["own"])


def test_base_tokenizer_reads_ordinary_words_whole(layout_rows):
    tokenizer = synthetic_base_model.build_tokenizer(layout_rows)
    words = [w for w in synthetic_base_model.EXTRA_WORDS if "-" not in w]
    words += "the glass vase on the left".split()
    for word in words:
        assert len(tokenizer.tokenize(word)) == 1, (word, tokenizer.tokenize(word))


def test_clip_batches_draw_their_share_in_groups_of_one_colour():
    colours = ["red"] * 20 + ["blue"] * 5 + ["green"] * 12 + ["white"] * 30
    rng = np.random.default_rng(0)
    for _ in range(20):
        index = synthetic_base_model.clip_batch(colours, 16, rng, 0.5, 4)
        assert len(index) == len(set(index.tolist())) == 16
        grouped = [colours[i] for i in index[:8]]
        assert sorted(np.unique(grouped, return_counts=True)[1].tolist()) == [4, 4]  # two colours, four each
    picked = np.concatenate([synthetic_base_model.clip_batch(colours, 16, rng, 0.5, 4)[8:] for _ in range(50)])
    assert len(np.unique([colours[i] for i in picked])) == 4  # the random half draws from every colour
    small = synthetic_base_model.clip_batch(["red"] * 3 + ["blue"], 8, rng, 0.5, 4)
    assert sorted(small.tolist()) == [0, 1, 2, 3]  # fewer rows than a batch: all of them, once
    # no share: the random batches of before, drawn the same way
    random = synthetic_base_model.clip_batch(colours, 16, np.random.default_rng(1))
    np.testing.assert_array_equal(random, np.random.default_rng(1).choice(len(colours), 16, replace=False))
    two = ["red"] * 20 + ["green"] * 12
    grouped_only = synthetic_base_model.clip_batch(two, 16, rng, 1.0, 8)
    assert sorted(np.unique([two[i] for i in grouped_only], return_counts=True)[1].tolist()) == [8, 8]


def test_word_sensitivity_measures_each_kind_of_word(layout_rows, tmp_path, monkeypatch):
    from diffusers_matte.data.synthetic import shapes

    base = tmp_path / "base"
    synthetic_base_model.build_base_model(base, layout_rows, vae_steps=0, clip_steps=0, unet_steps=0)
    tokenizer = synthetic_base_model.load_tokenizer(base)
    # the colours this small set's tokenizer reads as one token (the others it spells out)
    whole = {c: rgb for c, rgb in shapes.COLORS.items() if len(tokenizer.tokenize(c)) == 1}
    assert len(whole) >= 2
    monkeypatch.setattr(shapes, "COLORS", whole)
    moved = synthetic_base_model.word_sensitivity(base)
    assert set(moved) == {"category", "colour", "position", "category / colour", "position / colour"}
    assert all(moved[kind] > 0 for kind in ("category", "colour", "position"))
    assert moved["category / colour"] == pytest.approx(moved["category"] / moved["colour"])
    # an encoder blind to colour words: colour swaps no longer move it, category swaps still do
    from transformers import CLIPTextModel

    encoder = CLIPTextModel.from_pretrained(base / "text_encoder")
    with torch.no_grad():
        colour_ids = tokenizer.convert_tokens_to_ids([tokenizer.tokenize(c)[0] for c in whole])
        table = encoder.get_input_embeddings().weight
        table[colour_ids] = table[colour_ids[0]].clone()
    encoder.save_pretrained(base / "text_encoder")
    blind = synthetic_base_model.word_sensitivity(base)
    assert blind["colour"] < 1e-4 < blind["category"]


def test_instance_views_show_only_the_named_instance(layout_rows):
    views = synthetic_base_model.instance_views(layout_rows.select(range(2)))
    alpha = np.asarray(layout_rows[0]["alpha"], np.float32) / 255.0
    assert views.shape == (2, 3, 64, 64)
    image = np.asarray(layout_rows[0]["image"], np.float32) / 127.5 - 1
    expected = torch.from_numpy(image * alpha[..., None]).permute(2, 0, 1)
    torch.testing.assert_close(views[0], expected)  # the instance as drawn, mid-grey (0) elsewhere
    assert (alpha > 0).any() and (alpha == 0).any()
