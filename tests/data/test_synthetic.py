"""Tests for the procedural referring-matting set."""

import json

import datasets
import numpy as np
import pytest

from diffusers_matte.data.common import MATTING_FEATURES
from diffusers_matte.data.synthetic import (
    CATEGORIES,
    TEXT_TYPES,
    THIN_THINGS,
    TRANSPARENT_THINGS,
    fractal_noise,
    generate_scene,
    load_synthetic_matting,
    main,
    scene_rows,
)
from diffusers_matte.data.transforms import TrainingTransform

SIZE = 128


@pytest.fixture(scope="module")
def scenes():
    return [generate_scene([7, 0, i], size=SIZE) for i in range(40)]


def test_scene_is_deterministic_and_seed_dependent():
    a, b = generate_scene([1, 0, 5], size=SIZE), generate_scene([1, 0, 5], size=SIZE)
    np.testing.assert_array_equal(a.image, b.image)
    assert [i.texts for i in a.instances] == [i.texts for i in b.instances]
    for x, y in zip(a.instances, b.instances):
        np.testing.assert_array_equal(x.alpha, y.alpha)
    assert not np.array_equal(a.image, generate_scene([1, 0, 6], size=SIZE).image)
    assert not np.array_equal(a.image, generate_scene([2, 0, 5], size=SIZE).image)


def test_every_instance_has_four_distinct_typed_expressions(scenes):
    for scene in scenes:
        assert 2 <= len(scene.instances) <= 4
        for inst in scene.instances:
            assert len(inst.texts) == len(TEXT_TYPES) == 4
            assert all(t.strip() for t in inst.texts)
            assert inst.category in inst.texts[0]
        # within an image no two instances share an expression: each text picks one instance
        per_type = list(zip(*[inst.texts for inst in scene.instances]))
        for same_type in per_type:
            assert len(set(same_type)) == len(same_type), same_type


def test_alphas_are_consistent_with_compositing(scenes):
    for scene in scenes:
        total = np.sum([inst.alpha for inst in scene.instances], axis=0)
        assert total.max() <= 1.0 + 1e-5  # visible alphas partition the pixel coverage
        for inst in scene.instances:
            assert inst.alpha.shape == (SIZE, SIZE) and inst.alpha.dtype == np.float32
            assert np.all(inst.alpha <= inst.coverage + 1e-6)
            assert inst.alpha.sum() >= 0.4 * inst.coverage.sum()  # occluded at most 60%


def test_set_contains_the_hard_cases(scenes):
    instances = [inst for scene in scenes for inst in scene.instances]
    categories = {inst.category for inst in instances}
    assert categories & set(THIN_THINGS) and categories & set(TRANSPARENT_THINGS)
    soft_share = [((i.alpha > 0.02) & (i.alpha < 0.98)).sum() / max((i.alpha > 0.02).sum(), 1) for i in instances]
    # semi-transparent and thin things are mostly fractional alpha; the set as a whole has much of it
    assert np.mean(soft_share) > 0.2
    for inst, share in zip(instances, soft_share):
        if inst.category in ("smoke", "bubble", "veil", "glass", "net", "dandelion"):
            assert share > 0.3, (inst.category, share)
    # look-alike distractors: images holding two instances of one category
    with_twins = [s for s in scenes if len({i.category for i in s.instances}) < len(s.instances)]
    assert len(with_twins) >= 5
    assert any(i.blurry for i in instances) and any(i.material == "transparent" for i in instances)


def test_all_categories_render():
    seen = set()
    for i in range(150):
        seen |= {inst.category for inst in generate_scene([3, 0, i], size=SIZE).instances}
        if seen == set(CATEGORIES):
            break
    assert seen == set(CATEGORIES)


def test_fractal_noise_range_and_shape():
    noise = fractal_noise(np.random.default_rng(0), 20, 30)
    assert noise.shape == (20, 30) and noise.min() == 0.0 and noise.max() == pytest.approx(1.0)


def test_scene_rows_follow_schema():
    rows = scene_rows(0, "test", 3, size=SIZE)
    MATTING_FEATURES.encode_example(rows[0])  # raises on a schema mismatch
    assert len({r["image_id"] for r in rows}) == 1
    assert len({r["instance_id"] for r in rows}) == len(rows)
    meta = json.loads(rows[0]["meta"])
    assert meta["category"] in CATEGORIES and meta["num_instances"] == len(rows)
    assert rows[0]["text_types"] == list(TEXT_TYPES)


def test_builder_splits_features_and_cache(tmp_path):
    ds = load_synthetic_matting(num_train=3, num_test=2, seed=1, image_size=96, cache_dir=str(tmp_path))
    assert set(ds) == {"train", "test"}
    assert ds["train"].features == MATTING_FEATURES
    assert len(set(ds["train"]["image_id"])) == 3 and len(set(ds["test"]["image_id"])) == 2
    row = ds["test"][0]
    assert row["image"].size == (96, 96) and row["alpha"].mode == "L"
    assert len(row["texts"]) == 4
    # train and test images differ; a second call with the same parameters reads the cache
    assert ds["train"][0]["image_id"] != row["image_id"]
    again = load_synthetic_matting(num_train=3, num_test=2, seed=1, image_size=96, cache_dir=str(tmp_path))
    assert again["test"][0]["texts"] == row["texts"]
    # rows feed the training transform directly
    tensors = TrainingTransform(resolution=64, alpha_factors=(16,), seed=0)(row)
    assert tensors["pixel_values"].shape == (3, 64, 64) and tensors["region_map"].shape == (8, 8)
    assert tensors["text"] in row["texts"] and tensors["source"] == "synthetic"
    with pytest.raises(ValueError, match="num_train"):
        load_synthetic_matting(num_train=-1)
    with pytest.raises(ValueError, match="image_size"):
        load_synthetic_matting(image_size=32)


def test_command_line_writes_a_loadable_set(tmp_path, capsys):
    out = tmp_path / "synthetic"
    args = [
        "--output_dir",
        str(out),
        "--num_train",
        "2",
        "--num_test",
        "1",
        "--image_size",
        "64",
    ]
    main(args + ["--cache_dir", str(tmp_path / "cache")])
    loaded = datasets.load_from_disk(str(out))
    assert len(set(loaded["train"]["image_id"])) == 2 and len(set(loaded["test"]["image_id"])) == 1
    assert "load_from_disk" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="overwrite"):
        main(args)

    opaque = ["--transparent_weight", "0", "--thin_weight", "0", "--clear_share", "0", "--min_visible", "0.9"]
    main(args + opaque + ["--overwrite", "--num_train", "6", "--cache_dir", str(tmp_path / "cache")])
    categories = {json.loads(meta)["category"] for meta in datasets.load_from_disk(str(out))["train"]["meta"]}
    assert categories and not categories & (set(TRANSPARENT_THINGS) | set(THIN_THINGS))  # the flags reach the layout


def test_image_format_option():
    png = scene_rows(0, "train", 1, size=SIZE)[0]["image"]["bytes"]
    jpeg = scene_rows(0, "train", 1, size=SIZE, image_format="jpeg")[0]["image"]["bytes"]
    assert png[:4] == b"\x89PNG" and jpeg[:2] == b"\xff\xd8" and len(jpeg) < len(png)
    with pytest.raises(ValueError, match="image_format"):
        scene_rows(0, "train", 1, size=SIZE, image_format="gif")
    with pytest.raises(ValueError, match="image_format"):
        load_synthetic_matting(image_format="gif")


def test_contact_sheet_script(tmp_path):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "examples" / "make_synthetic_contact_sheet.py"
    spec = importlib.util.spec_from_file_location("contact_sheet", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    scenes = module.pick_scenes(seed=0, count=2, size=64, pool=6)
    assert scenes[0] is not scenes[1]
    sheet = module.draw_sheet(scenes, size=64)
    assert sheet.size == (5 * 64, 28 + 2 * (64 + module.TEXT_HEIGHT))
    out = module.main(["--output", str(tmp_path / "s.png"), "--num_scenes", "1", "--image_size", "64"])
    assert out.is_file()


def test_a_split_of_zero_images_is_left_out():
    only_test = load_synthetic_matting(num_train=0, num_test=1, image_size=64)
    assert list(only_test) == ["test"] and len(only_test["test"]) >= 2


def test_scene_layout_sets_size_count_and_thin_share():
    from diffusers_matte.data.synthetic import SceneLayout

    def scenes(layout):
        return [generate_scene([4, 0, i], size=64, layout=layout) for i in range(30)]

    default, large = scenes(SceneLayout()), scenes(SceneLayout(3, 2.6, 0.0))

    def mean_area(ss):
        return np.mean([(i.alpha > 0).mean() for s in ss for i in s.instances])

    assert mean_area(large) > 3 * mean_area(default)
    assert all(2 <= len(s.instances) <= 3 for s in large)
    assert not {i.category for s in large for i in s.instances} & set(THIN_THINGS)
    for bad in (dict(max_instances=1), dict(object_scale=0), dict(thin_weight=-1)):
        with pytest.raises(ValueError, match=next(iter(bad))):
            SceneLayout(**bad)


def test_scene_layout_sets_occlusion_and_transparency():
    from diffusers_matte.data.synthetic import SOLID_SHAPES, SceneLayout

    def instances(**fields):
        layout = SceneLayout(3, 1.8, **fields)
        return [i for k in range(30) for i in generate_scene([5, 0, k], size=64, layout=layout).instances]

    visible = [i.alpha.sum() / i.coverage.sum() for i in instances(min_visible=0.8)]
    assert min(visible) >= 0.8
    assert min(i.alpha.sum() / i.coverage.sum() for i in instances()) < 0.8  # the default lets more be hidden
    opaque = instances(transparent_weight=0.0, clear_share=0.0)
    assert not {i.category for i in opaque} & set(TRANSPARENT_THINGS)

    def clear(instances):  # share of solid shapes drawn semi-transparent (look-alikes may flip their material)
        return np.mean([i.material == "transparent" for i in instances if i.category in SOLID_SHAPES])

    assert clear(opaque) < 0.15 < 0.85 < clear(instances(clear_share=1.0))
    with pytest.raises(RuntimeError, match="lower min_visible"):  # says what to change when no scene fits
        generate_scene([0, 0, 0], size=64, layout=SceneLayout(3, 2.6, min_visible=1.0), max_tries=3)
    for bad in (dict(min_visible=1.5), dict(clear_share=-0.1), dict(transparent_weight=-1)):
        with pytest.raises(ValueError, match=next(iter(bad))):
            SceneLayout(**bad)


def test_middle_names_only_the_middle_row(scenes):
    for scene in scenes:
        for inst in scene.instances:
            for text in inst.texts[:2]:  # keyword and attributes name the instance itself
                if " middle " in f" {text} ":
                    assert inst.cell[1] == 1, (text, inst.cell)


def test_paraphrase_varies_wording_and_keeps_expressions_unique():
    from diffusers_matte.data.synthetic import SceneLayout, paraphrase

    rng = np.random.default_rng(0)
    variants = {paraphrase("the top ball to the left of the gray box", rng) for _ in range(60)}
    assert "the upper sphere left of the grey cube" in variants
    assert "the top ball to the left of the gray box" in variants
    assert all("upper of" not in v and "lower of" not in v for v in variants)
    layout = SceneLayout(paraphrase=True)
    for i in range(20):
        scene = generate_scene([7, 0, i], size=SIZE, layout=layout)
        for same_type in zip(*[inst.texts for inst in scene.instances]):
            assert len(set(same_type)) == len(same_type), same_type


def test_layout_is_part_of_the_cache_key(tmp_path):
    from diffusers_matte.data.synthetic import SceneLayout

    cache = str(tmp_path / "cache")
    small = load_synthetic_matting(2, 0, image_size=64, cache_dir=cache)["train"]
    large = load_synthetic_matting(2, 0, image_size=64, cache_dir=cache, layout=SceneLayout(3, 2.6, 1 / 3))["train"]

    def area(rows):
        return np.mean([(np.asarray(a) > 0).mean() for a in rows["alpha"]])

    assert area(large) > 2 * area(small)
