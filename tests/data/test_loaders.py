"""Every loader on fixture folders written in the exact documented layouts (tests/data/matting_layouts.py)."""

import json
import shutil

import datasets
import numpy as np
import pytest
from matting_layouts import (
    alpha_code,
    image_code,
    make_am2k,
    make_folder,
    make_p3m,
    make_refcoco,
    make_refmatte,
    make_rw100,
    write_alpha,
)

from diffusers_matte.data.am2k import load_am2k
from diffusers_matte.data.common import MATTING_FEATURES, DatasetLayoutError
from diffusers_matte.data.folder import load_image_alpha_folder
from diffusers_matte.data.p3m import load_p3m10k
from diffusers_matte.data.refcoco import (
    load_refcoco,
    ref_in_split,
    rle_string_to_counts,
    segmentation_to_mask,
)
from diffusers_matte.data.refmatte import load_refmatte
from diffusers_matte.data.refmatte_rw100 import load_refmatte_rw100


@pytest.fixture
def cache(tmp_path):
    return str(tmp_path / "hf_cache")


def _check_pairing(ds):
    """Image, alpha and instance id agree (fixtures encode ids in pixel values)."""
    assert ds.features == MATTING_FEATURES
    for row in ds:
        assert row["alpha"].mode == "L" and row["alpha"].size == row["image"].size


def test_refmatte_nested_layout_both_splits(tmp_path, cache):
    train = make_refmatte(tmp_path / "data", "train", (2, 1, 3))
    make_refmatte(tmp_path / "data", "test", (1, 1))
    ds = load_refmatte(tmp_path / "data", cache_dir=cache)
    assert set(ds) == {"train", "test"}
    assert len(ds["train"]) == 6 and len(ds["test"]) == 2  # one row per instance (mask PNG)
    _check_pairing(ds["train"])
    for row in ds["train"]:
        stem = row["instance_id"]
        assert row["texts"] == train[stem]["expressions"] and row["text_types"] == []
        image_index = int(row["image_id"].split("_")[2][:4], 16)
        assert abs(image_code(row["image"]) - 40 * (image_index + 1)) <= 2
        assert alpha_code(row["alpha"]) == 40 * (image_index + 1) + int(stem[-1])
        assert row["source"] == "refmatte"


def test_refmatte_flat_layout_split_and_keyword_setting(tmp_path, cache):
    labels = make_refmatte(tmp_path, "test", (1,), nested=False)
    stem = next(iter(labels))
    ds = load_refmatte(tmp_path, split="test", cache_dir=cache)
    assert isinstance(ds, datasets.Dataset) and len(ds) == 1
    with pytest.raises(DatasetLayoutError, match="keyword"):
        load_refmatte(tmp_path, setting="keyword", cache_dir=cache)
    labels[stem]["keyword"] = "teddy bear"
    (tmp_path / "test" / "refmatte_test_label.json").write_text(json.dumps(labels))
    ds = load_refmatte(tmp_path, split="test", setting="keyword", cache_dir=str(tmp_path / "c2"))
    assert ds[0]["texts"] == ["teddy bear"]
    assert json.loads(ds[0]["meta"])["keyword"] == "teddy bear"


def test_refmatte_reports_missing_files_and_keys(tmp_path, cache):
    labels = make_refmatte(tmp_path, "train", (2,))
    (tmp_path / "RefMatte/RefMatte/train/mask" / f"{next(iter(labels))}.png").unlink()
    with pytest.raises(DatasetLayoutError, match=r"(?s)1 file\(s\) missing.*_1\.png"):
        load_refmatte(tmp_path, cache_dir=cache)
    label_file = tmp_path / "RefMatte/RefMatte/train/refmatte_train_label.json"
    label_file.write_text(json.dumps({"x_1": {"image": "x", "sentences": []}}))
    with pytest.raises(DatasetLayoutError, match="image_name and expressions.*'image', 'sentences'"):
        load_refmatte(tmp_path, cache_dir=cache)
    label_file.unlink()
    with pytest.raises(DatasetLayoutError, match="label JSON"):
        load_refmatte(tmp_path, cache_dir=cache)
    shutil.rmtree(tmp_path / "RefMatte")
    with pytest.raises(DatasetLayoutError, match="no RefMatte split folder"):
        load_refmatte(tmp_path, cache_dir=cache)


def test_refmatte_finds_other_label_name_and_warns_on_text_count(tmp_path, cache, caplog):
    labels = make_refmatte(tmp_path, "test", (1,), nested=False)
    stem = next(iter(labels))
    labels[stem]["expressions"] = labels[stem]["expressions"][:3]
    (tmp_path / "test" / "refmatte_test_label.json").unlink()
    (tmp_path / "test" / "RefMatte_test_label_v2.json").write_text(json.dumps(labels))
    with caplog.at_level("WARNING"):
        ds = load_refmatte(tmp_path, split="test", cache_dir=cache)
    assert len(ds[0]["texts"]) == 3
    assert "do not have 4 expressions" in caplog.text


def test_rw100(tmp_path, cache):
    labels = make_rw100(tmp_path)
    ds = load_refmatte_rw100(tmp_path, cache_dir=cache)
    assert len(ds) == 4 and set(ds["image_id"]) == {"rw_000", "rw_001", "rw_002"}
    _check_pairing(ds)
    for row in ds:
        assert row["texts"] == labels[row["instance_id"]]["expressions"]
        assert alpha_code(row["alpha"]) == 30 * (int(row["image_id"][-1]) + 1) + int(row["instance_id"][-1])
        assert row["source"] == "refmatte_rw100"
    # pointing data_dir at RefMatte_RW_100 itself works too
    assert len(load_refmatte_rw100(tmp_path / "RefMatte_RW_100", cache_dir=cache)) == 4


@pytest.mark.parametrize("validation_folder", [True, False])
def test_p3m10k_splits_trimaps_and_captions(tmp_path, cache, validation_folder):
    make_p3m(tmp_path, validation_folder=validation_folder)
    ds = load_p3m10k(tmp_path, cache_dir=cache)
    assert {k: len(v) for k, v in ds.items()} == {
        "train": 3,
        "p3m_500_p": 2,
        "p3m_500_np": 2,
    }
    for split in ds:
        _check_pairing(ds[split])
        for row in ds[split]:
            assert abs(image_code(row["image"]) - alpha_code(row["alpha"])) <= 2
            assert row["texts"] == [] and row["source"] == "p3m10k"
    meta = json.loads(ds["p3m_500_np"][0]["meta"])
    assert meta["trimap"].endswith("P3M-500-NP/trimap/p_00000150.png")
    captions = tmp_path / "captions.json"
    stems = ds["train"]["image_id"]
    captions.write_text(json.dumps({s: f"a person {s}" for s in stems}))
    train = load_p3m10k(tmp_path, split="train", captions_file=captions, cache_dir=cache)
    assert train[0]["texts"] == [f"a person {train[0]['image_id']}"] and train[0]["text_types"] == ["caption"]
    captions.write_text(json.dumps({stems[0]: "only one"}))
    with pytest.raises(DatasetLayoutError, match="no entry for image"):
        load_p3m10k(
            tmp_path,
            split="train",
            captions_file=captions,
            cache_dir=str(tmp_path / "c3"),
        )


def test_p3m10k_missing_mask_and_wrong_folder(tmp_path, cache):
    make_p3m(tmp_path)
    (tmp_path / "P3M-10k/train/mask/p_07140001.png").unlink()
    with pytest.raises(DatasetLayoutError, match="without alpha in .*train/mask.*p_07140001"):
        load_p3m10k(tmp_path, cache_dir=cache)
    with pytest.raises(DatasetLayoutError, match="no P3M-10k split"):
        load_p3m10k(tmp_path / "P3M-10k" / "train", cache_dir=cache)


def test_am2k(tmp_path, cache):
    make_am2k(tmp_path)
    ds = load_am2k(tmp_path, cache_dir=cache)
    assert {k: len(v) for k, v in ds.items()} == {"train": 3, "validation": 2}
    for split in ds:
        _check_pairing(ds[split])
        for row in ds[split]:
            assert abs(image_code(row["image"]) - alpha_code(row["alpha"])) <= 2
            assert row["image_id"].startswith("m_") and row["source"] == "am2k"
    assert "trimap" in json.loads(ds["validation"][0]["meta"])
    (tmp_path / "AM-2k/validation/trimap/m_0000003c.png").unlink()
    with pytest.raises(DatasetLayoutError, match="without trimap.*m_0000003c"):
        load_am2k(tmp_path, cache_dir=str(tmp_path / "c2"))


def test_image_alpha_folder_flat_and_split_layouts(tmp_path, cache):
    captions = make_folder(tmp_path / "flat")
    ds = load_image_alpha_folder(
        tmp_path / "flat",
        captions_file=tmp_path / "flat" / "captions.json",
        source="rm1k",
        cache_dir=cache,
    )
    assert list(ds) == ["train"] and len(ds["train"]) == 3
    for row in ds["train"]:
        assert row["texts"] == [captions[row["image_id"]]] and row["source"] == "rm1k"
        assert image_code(row["image"]) == alpha_code(row["alpha"])
    make_folder(tmp_path / "split", with_splits=True)
    split_ds = load_image_alpha_folder(tmp_path / "split", cache_dir=cache)
    assert set(split_ds) == {"train", "test"} and split_ds["train"][0]["texts"] == []
    write_alpha(tmp_path / "flat" / "alphas" / "orphan.png", 3)
    with pytest.raises(DatasetLayoutError, match="alpha\\(s\\) without image.*orphan"):
        load_image_alpha_folder(tmp_path / "flat", cache_dir=cache)
    with pytest.raises(DatasetLayoutError, match="expected .*/masks/"):
        load_image_alpha_folder(tmp_path / "flat", image_dir="masks", cache_dir=cache)
    with pytest.raises(DatasetLayoutError, match="data_dir folder"):
        load_image_alpha_folder(tmp_path / "nowhere", cache_dir=cache)


def test_rle_decoding_matches_hand_worked_vectors():
    assert rle_string_to_counts("231") == [2, 3, 1]
    assert rle_string_to_counts("2311") == [
        2,
        3,
        1,
        4,
    ]  # 4th run is stored relative to the 2nd
    assert rle_string_to_counts("5:2G") == [
        5,
        10,
        2,
        1,
    ]  # negative delta, sign-extended
    mask = segmentation_to_mask({"size": [2, 3], "counts": [1, 2, 3]}, 2, 3)
    np.testing.assert_array_equal(mask, [[0, 1, 0], [1, 0, 0]])  # column-major runs
    with pytest.raises(ValueError, match="RLE covers"):
        segmentation_to_mask({"size": [2, 3], "counts": [1, 2]}, 2, 3)


def test_ref_split_rule():
    assert ref_in_split("testAB", "testA") and ref_in_split("testAB", "testB") and ref_in_split("testB", "testB")
    assert not ref_in_split("testA", "testB") and not ref_in_split("train", "val")


def test_refcoco_masks_and_pseudo_alphas(tmp_path, cache):
    fixture = make_refcoco(tmp_path)
    ds = load_refcoco(tmp_path, splits=("train", "testA"), alpha_source="mask", cache_dir=cache)
    assert {k: len(v) for k, v in ds.items()} == {"train": 2, "testA": 1}
    _check_pairing(ds["train"])
    rows = {r["instance_id"]: r for r in ds["train"]}
    assert rows["1"]["texts"] == ["ref 1 sentence 0", "ref 1 sentence 1"]
    assert abs(image_code(rows["1"]["image"]) - 50) <= 2 and rows["1"]["image_id"] == "9"
    polygon = np.asarray(rows["1"]["alpha"]) > 0
    assert polygon[2:10, 2:10].all() and polygon.sum() <= 81  # the square polygon (PIL fills its outline too)
    np.testing.assert_array_equal(np.asarray(rows["2"]["alpha"]) > 0, fixture["rle_mask"] > 0)  # compressed RLE
    assert (np.asarray(ds["testA"][0]["alpha"]) > 0).sum() == 16  # uncompressed RLE
    meta = json.loads(rows["2"]["meta"])
    assert meta["category"] == "dog" and meta["ann_id"] == 102
    # pseudo-alphas are read from refcoco/pseudo_alpha/<ann_id>.png; a missing one is reported by path
    with pytest.raises(DatasetLayoutError, match="pseudo-alpha"):
        load_refcoco(tmp_path, cache_dir=cache)
    write_alpha(tmp_path / "refcoco" / "pseudo_alpha" / "101.png", 201)
    with pytest.raises(DatasetLayoutError, match=r"(?s)pseudo_alpha/102\.png"):
        load_refcoco(tmp_path, cache_dir=cache)
    write_alpha(tmp_path / "refcoco" / "pseudo_alpha" / "102.png", 202)
    train = load_refcoco(tmp_path, cache_dir=cache)["train"]
    assert sorted(alpha_code(r["alpha"]) for r in train) == [201, 202]
    with pytest.raises(ValueError, match="unknown RefCOCO split"):
        load_refcoco(tmp_path, splits=("dev",))


def test_refcoco_layout_errors(tmp_path, cache):
    make_refcoco(tmp_path)
    (tmp_path / "refcoco" / "refs(unc).p").write_bytes(b"not a pickle")
    with pytest.raises(DatasetLayoutError, match=r"could not read the refs pickle .*refs\(unc\)\.p"):
        load_refcoco(tmp_path, alpha_source="mask", cache_dir=cache)
    make_refcoco(tmp_path)
    shutil.rmtree(tmp_path / "images")
    with pytest.raises(DatasetLayoutError, match="train2014"):
        load_refcoco(tmp_path, alpha_source="mask", cache_dir=cache)
    with pytest.raises(DatasetLayoutError, match="refs\\(google\\)"):
        load_refcoco(tmp_path, alpha_source="mask", split_by="google", cache_dir=cache)
