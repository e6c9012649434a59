"""Rows whose texts name nothing in the image: the synthetic set's no-target rows, the `has_target` column of every
loader, their all-background region map and their way through the training data path."""

import json
import sys
from pathlib import Path

import datasets
import numpy as np
import pytest

from diffusers_matte.data.common import MATTING_FEATURES, make_row, row_has_target
from diffusers_matte.data.synthetic import (
    CATEGORIES,
    COLORS,
    REPLICATION_LAYOUT,
    TEXT_TYPES,
    SceneLayout,
    absent_expressions,
    generate_scene,
    load_synthetic_matting,
    main,
    scene_rows,
)
from diffusers_matte.data.synthetic.expressions import (
    _OPPOSITE,
    _absolute_phrase,
    _minimal_description,
    _noun_phrase,
    _relations,
)
from diffusers_matte.data.targets import (
    REGION_BACKGROUND,
    downsample_region_map,
    known_mask,
    region_map,
)
from diffusers_matte.data.transforms import TrainingTransform, collate_training_examples
from diffusers_matte.training_loop.data import RowDataset

sys.path.insert(0, str(Path(__file__).parent))
from matting_layouts import make_folder, make_refmatte  # noqa: E402

SIZE = 64


def _alpha(row) -> np.ndarray:
    import io

    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(row["alpha"]["bytes"])))


def test_share_zero_gives_the_rows_of_before_and_every_row_has_a_target():
    for index in range(3):
        default = scene_rows(0, "train", index, size=SIZE)
        assert scene_rows(0, "train", index, size=SIZE, no_target_share=0.0) == default
        assert all(row["has_target"] is True for row in default)
        assert not any(row["instance_id"].endswith("_none") for row in default)


def test_a_no_target_row_is_added_and_the_other_rows_stay_the_same():
    for index in range(6):
        plain = scene_rows(3, "test", index, size=SIZE, layout=REPLICATION_LAYOUT)
        rows = scene_rows(3, "test", index, size=SIZE, layout=REPLICATION_LAYOUT, no_target_share=1.0)
        assert rows[:-1] == plain
        extra = rows[-1]
        MATTING_FEATURES.encode_example(extra)  # the schema of every row
        assert extra["has_target"] is False and extra["instance_id"] == f"{plain[0]['image_id']}_none"
        assert extra["image"] == plain[0]["image"] and extra["image_id"] == plain[0]["image_id"]
        alpha = _alpha(extra)
        assert alpha.shape == (SIZE, SIZE) and not alpha.any()
        assert 2 <= len(extra["texts"]) <= 4 and all(t.strip() for t in extra["texts"])
        assert extra["text_types"][:2] == ["keyword", "basic"]
        assert [t for t in TEXT_TYPES if t in extra["text_types"]] == extra["text_types"]
        assert json.loads(extra["meta"]) == {"num_instances": len(plain)}
        # no text of the no-target row is one of the texts that name an instance
        assert not set(extra["texts"]) & {t for row in plain for t in row["texts"]}


def test_the_share_draws_images_reproducibly_and_nests():
    def with_rows(share):
        return {
            i for i in range(40) if not scene_rows(1, "train", i, size=SIZE, no_target_share=share)[-1]["has_target"]
        }

    low, high = with_rows(0.25), with_rows(0.6)
    assert low == with_rows(0.25) and low <= high  # a larger share keeps the images of a smaller one
    assert 3 <= len(low) <= 18 and len(high) > len(low)
    for bad in (-0.1, 1.5):
        with pytest.raises(ValueError, match="no_target_share"):
            scene_rows(0, "train", 0, size=SIZE, no_target_share=bad)
        with pytest.raises(ValueError, match="no_target_share"):
            load_synthetic_matting(1, 0, image_size=SIZE, no_target_share=bad)


@pytest.mark.parametrize("layout", [SceneLayout(), REPLICATION_LAYOUT], ids=["default", "replication"])
def test_absent_expressions_name_no_instance(layout):
    phrases = {_absolute_phrase((h, v)): (h, v) for h in range(3) for v in range(3)}
    kinds = set()
    for index in range(30):
        instances = generate_scene([5, 0, index], size=SIZE, layout=layout).instances
        order = {id(inst): k for k, inst in enumerate(instances)}
        for text, kind in absent_expressions(instances, SIZE, np.random.default_rng(index)):
            kinds.add(kind)
            words = text.split()
            if kind == "keyword":
                assert text in CATEGORIES and all(inst.category != text for inst in instances), text
                continue
            # the head noun: the only category word of a basic expression, the second word of the others
            category = next(c for c in CATEGORIES if c in words) if kind == "basic" else words[1]
            same = [inst for inst in instances if inst.category == category]
            assert same, text  # the other kinds name a category the image holds
            if kind == "basic":
                colour = next(c for c in COLORS if c in words)
                assert all(inst.color != colour for inst in same), text
            elif kind == "absolute":
                h, v = next(cell for phrase, cell in phrases.items() if text.endswith(phrase))
                for inst in same:  # neither its centroid nor much of its alpha in the cell named
                    assert inst.cell != (h, v), text
                    inside = inst.alpha[v * SIZE // 3 : (v + 1) * SIZE // 3, h * SIZE // 3 : (h + 1) * SIZE // 3]
                    assert inside.sum() < 0.06 * inst.alpha.sum(), text
                    if h == 1 and v != 1:  # "at the top": nothing of that category in the top row
                        assert inst.cell[1] != v, text
                    if v == 1 and h != 1:  # "on the left side": nothing in the left column
                        assert inst.cell[0] != h, text
            else:
                relation = next(r for r in _OPPOSITE if f" {r} " in text)
                head, reference = text.split(f" {relation} ")
                assert head == f"the {category}", text
                ref = next(
                    i for i in instances if reference == f"the {_noun_phrase(_minimal_description(i, instances))}"
                )
                others = [i for i in same if i is not ref]
                assert others and all(_OPPOSITE[relation] in _relations(i, ref, SIZE, order) for i in others), text
    assert kinds == set(TEXT_TYPES)


def test_an_absolute_phrase_reaches_its_row_or_column():
    from diffusers_matte.data.synthetic.expressions import _reach

    assert _reach((0, 0)) == [(0, 0)] and _reach((1, 1)) == [(1, 1)]
    assert _reach((1, 0)) == [(0, 0), (1, 0), (2, 0)]  # "at the top of the image": the whole top row
    assert _reach((2, 1)) == [(2, 0), (2, 1), (2, 2)]  # "on the right side of the image": the right column


def test_builder_and_command_line_with_no_target_rows(tmp_path, capsys):
    cache = str(tmp_path / "cache")
    plain = load_synthetic_matting(0, 4, seed=2, image_size=SIZE, cache_dir=cache)["test"]
    mixed = load_synthetic_matting(0, 4, seed=2, image_size=SIZE, cache_dir=cache, no_target_share=1.0)["test"]
    assert mixed.features == plain.features == MATTING_FEATURES
    assert all(plain["has_target"]) and len(mixed) == len(plain) + 4  # the share is part of the cache key
    absent = mixed.filter(lambda row: not row["has_target"])
    assert len(absent) == 4 and all(not np.asarray(a).any() for a in absent["alpha"])
    main(["--output_dir", str(tmp_path / "set"), "--num_train", "0", "--num_test", "2", "--image_size", str(SIZE)]
         + ["--no_target_share", "1", "--cache_dir", cache])  # fmt: skip
    summary = json.loads(capsys.readouterr().out.split("\nload it with")[0])
    assert summary["test"]["no_target_rows"] == 2 and summary["test"]["images"] == 2


def test_real_set_loaders_mark_every_row_as_having_a_target(tmp_path):
    from diffusers_matte.data.folder import load_image_alpha_folder
    from diffusers_matte.data.refmatte import load_refmatte

    make_refmatte(tmp_path / "refmatte", "train")
    make_folder(tmp_path / "folder")
    cache = tmp_path / "cache"
    refmatte = load_refmatte(tmp_path / "refmatte", split="train", cache_dir=cache)
    folder = load_image_alpha_folder(tmp_path / "folder", cache_dir=cache)
    for rows in (refmatte, folder["train"] if isinstance(folder, datasets.DatasetDict) else folder):
        assert rows.features["has_target"] == datasets.Value("bool") and all(rows["has_target"])
    assert make_row("a.png", "a.png", ["x"], "1", "1", "s")["has_target"] is True
    assert row_has_target({}) and row_has_target({"has_target": None}) and not row_has_target({"has_target": False})


def test_an_all_zero_alpha_is_all_background_on_every_grid():
    for shape in [(64, 64), (40, 56), (16, 16)]:
        regions = region_map(np.zeros(shape, np.uint8))
        assert (regions == REGION_BACKGROUND).all()  # eq. (2): erosion does not eat the image border
        assert (known_mask(regions) == 1).all()
    assert (downsample_region_map(region_map(np.zeros((64, 64), np.float32)), 8) == REGION_BACKGROUND).all()


def _rows_with_a_no_target_row(saved_before_the_column: bool = False) -> datasets.Dataset:
    rows = scene_rows(4, "train", 0, size=SIZE, no_target_share=1.0)
    dataset = datasets.Dataset.from_list(rows, features=MATTING_FEATURES)
    return dataset.remove_columns("has_target") if saved_before_the_column else dataset


def test_a_no_target_row_trains_on_an_all_zero_alpha_and_an_all_background_region_map():
    rows = _rows_with_a_no_target_row()
    dataset = RowDataset(rows, TrainingTransform(resolution=SIZE, latent_factor=8, alpha_factors=()), seed=0)
    batch = collate_training_examples([dataset[i] for i in range(len(rows))])
    flags = batch["has_target"]
    assert flags.dtype.is_floating_point is False and flags.tolist() == [True] * (len(rows) - 1) + [False]
    absent = int(np.flatnonzero(~flags.numpy())[0])
    assert batch["text"][absent] in rows[absent]["texts"]
    assert not batch["alpha"][absent].any() and not batch["alpha_lr"][absent].any()
    assert (batch["region_map"][absent] == REGION_BACKGROUND).all()
    assert (batch["known_mask"][absent] == 1).all() and not batch["transparent_mask"][absent].any()
    present = batch["alpha"][flags]
    assert all(alpha.max() > 0.3 for alpha in present)  # the instance rows keep their mattes


def test_rows_saved_before_the_column_have_a_target():
    rows = _rows_with_a_no_target_row(saved_before_the_column=True)
    dataset = RowDataset(rows, TrainingTransform(resolution=SIZE, latent_factor=8, alpha_factors=()), seed=0)
    assert all(bool(dataset[i]["has_target"]) for i in range(len(rows)))
