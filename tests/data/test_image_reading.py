"""The data loaders, the training transform and the evaluation read images as people see them: EXIF orientation
applied, modes converted by what they mean (the rules of `image_processor.load_image`)."""

import numpy as np
import PIL.Image

from diffusers_matte.data.folder import load_image_alpha_folder
from diffusers_matte.data.transforms import TrainingTransform
from diffusers_matte.evaluation.protocols import load_pair


def _phone_photo(path, stored_hw=(16, 24)):
    """Stored `stored_hw` with EXIF Orientation 6 (rotate 90 degrees clockwise to display); returns the upright
    pixels."""
    stored = np.random.default_rng(0).integers(0, 256, (*stored_hw, 3), dtype=np.uint8)
    image = PIL.Image.fromarray(stored)
    exif = image.getexif()
    exif[0x0112] = 6
    image.save(path, exif=exif)  # PNG: exact pixels
    return np.rot90(stored, -1).copy()


def _alpha_like(upright, path=None):
    alpha = PIL.Image.fromarray(np.tile(np.linspace(0, 255, upright.shape[1]).astype(np.uint8), (upright.shape[0], 1)))
    if path is not None:
        alpha.save(path)
    return alpha


def test_training_transform_reads_undecoded_rows_upright(tmp_path):
    upright = _phone_photo(tmp_path / "phone.png")
    alpha = _alpha_like(upright)  # drawn on the photo as displayed: 24 high, 16 wide
    transform = TrainingTransform(resolution=16, latent_factor=8, alpha_factors=())
    for row in (
        {"image": {"path": str(tmp_path / "phone.png")}, "alpha": alpha, "texts": ["x"]},
        {"image": {"bytes": (tmp_path / "phone.png").read_bytes()}, "alpha": alpha, "texts": ["x"]},
    ):
        out = transform(row)  # today: "differ in size" (the photo read sideways)
        expected = transform.from_arrays(upright, np.asarray(alpha, np.float32) / 255.0, "x")
        np.testing.assert_array_equal(out["pixel_values"].numpy(), expected["pixel_values"].numpy())


def test_folder_loader_rows_are_upright(tmp_path):
    (tmp_path / "data" / "images").mkdir(parents=True)
    (tmp_path / "data" / "alphas").mkdir()
    upright = _phone_photo(tmp_path / "data" / "images" / "a.png")
    _alpha_like(upright, tmp_path / "data" / "alphas" / "a.png")
    row = load_image_alpha_folder(tmp_path / "data", split="train", cache_dir=tmp_path / "cache")[0]
    assert row["image"].size == row["alpha"].size == (16, 24)
    out = TrainingTransform(resolution=16, latent_factor=8, alpha_factors=())(row)
    assert out["pixel_values"].shape == (3, 16, 16)


def test_evaluation_reads_32_bit_and_cmyk_images_by_what_they_mean(tmp_path):
    values = np.full((4, 6), 1 << 30, np.int32)  # half of the signed 32-bit white
    PIL.Image.fromarray(values).save(tmp_path / "deep.tif")
    alpha = PIL.Image.new("L", (6, 4), 128)
    image, _ = load_pair({"image": PIL.Image.open(tmp_path / "deep.tif"), "alpha": alpha, "instance_id": "a"}, None)
    assert image.dtype == np.uint8 and np.all(image == 128)  # today: 255, clipped
    cmyk = PIL.Image.new("CMYK", (6, 4), (0, 255, 255, 0))
    image, _ = load_pair({"image": cmyk, "alpha": alpha, "instance_id": "b"}, None)
    np.testing.assert_array_equal(image[0, 0], [255, 0, 0])
