"""`SoftGroundingMattingOutput.grounding_score`: what it measures, its shape, range and formats, and that a pair's
score depends on that pair only (not on the batch, the other prompts or images, the output size)."""

import numpy as np
import pytest
import torch

from diffusers_matte.pipelines import SoftGroundingMattingPipeline
from diffusers_matte.pipelines.soft_grounding.pipeline_soft_grounding import (
    GROUNDING_SCORE_WINDOW,
    AlphaPrediction,
    PreparedImage,
    grounding_score,
)
from diffusers_matte.testing import get_dummy_components, get_dummy_inputs

PROMPTS = ["the cat on the left", "a dog", "the glass of water"]


@pytest.fixture(scope="module")
def pipe():
    pipe = SoftGroundingMattingPipeline(**get_dummy_components())
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _maps(coarse, transparency=None):
    coarse = torch.as_tensor(coarse, dtype=torch.float32)[None, None]
    transparency = torch.zeros_like(coarse) if transparency is None else torch.as_tensor(transparency)[None, None]
    return coarse, transparency.float()


def test_score_is_the_peak_of_the_local_mean_of_alpha_or_transparency():
    assert GROUNDING_SCORE_WINDOW == 3
    empty = np.zeros((8, 8), np.float32)
    assert grounding_score(*_maps(empty)).tolist() == [0.0]
    blob = empty.copy()
    blob[2:5, 3:6] = 1.0  # an object of 3x3 cells scores its full alpha
    assert grounding_score(*_maps(blob)).item() == pytest.approx(1.0)
    stray = empty.copy()
    stray[4, 4] = 0.9  # one stray cell counts for a ninth of itself
    assert grounding_score(*_maps(stray)).item() == pytest.approx(0.1)
    corner = empty.copy()
    corner[0, 0] = 0.8  # at the edge the mean runs over the cells inside the grid only
    assert grounding_score(*_maps(corner)).item() == pytest.approx(0.2)
    # A see-through object: low alpha, high transparency confidence, scores high
    glassy = empty.copy()
    glassy[2:6, 2:6] = 0.2
    assert grounding_score(*_maps(glassy)).item() == pytest.approx(0.2)
    assert grounding_score(*_maps(glassy, glassy * 4.5)).item() == pytest.approx(0.9)
    # A small object scores as high as a large one: the peak, not the mass
    large = empty.copy()
    large[1:7, 1:7] = 0.7
    assert grounding_score(*_maps(large)).item() == pytest.approx(grounding_score(*_maps(blob * 0.7)).item())
    # Each row of a batch is scored alone, and values outside [0, 1] are clipped
    pair = torch.cat([_maps(blob * 2.0)[0], _maps(stray)[0]])
    assert grounding_score(pair, torch.zeros_like(pair)).tolist() == pytest.approx([1.0, 0.1])
    assert grounding_score(pair, torch.zeros_like(pair), window=1).tolist() == pytest.approx([1.0, 0.9])


def test_score_argument_errors():
    coarse, transparency = _maps(np.zeros((4, 4)))
    for window in (0, 2, 1.0):
        with pytest.raises(ValueError, match="`window` must be an odd positive integer"):
            grounding_score(coarse, transparency, window=window)
    with pytest.raises(ValueError, match=r"\(B, 1, h, w\)"):
        grounding_score(coarse, transparency[..., :2])


def test_padding_cells_do_not_count():
    image = PreparedImage(torch.zeros(1, 3, 40, 56), torch.zeros(1, 3, 48, 64), padding=(8, 8), original_size=(40, 56))
    coarse = torch.zeros(1, 1, 6, 8)
    coarse[..., 5:, :] = 1.0  # the last row of cells lies in the padding
    coarse[..., :, 7:] = 1.0  # and so does the last column
    assert image.crop_padding(coarse).shape[-2:] == (5, 7) and not image.crop_padding(coarse).any()
    prediction = AlphaPrediction(
        torch.zeros(1, 1, 48, 64), coarse, torch.zeros_like(coarse), torch.zeros(1, 2, 48, 64)
    )
    assert SoftGroundingMattingPipeline.score_grounding(None, image, prediction) == 0.0
    coarse[..., 2, 2] = 0.9
    assert SoftGroundingMattingPipeline.score_grounding(None, image, prediction) == pytest.approx(0.1)


def test_shape_range_and_output_types(pipe):
    inputs = {**get_dummy_inputs(), "prompt": PROMPTS, "batch_size": 3}
    as_np = pipe(**inputs).grounding_score
    assert isinstance(as_np, np.ndarray) and as_np.shape == (3,) and as_np.dtype == np.float32
    assert ((as_np >= 0) & (as_np <= 1)).all()
    as_pt = pipe(**{**inputs, "output_type": "pt"}).grounding_score
    assert isinstance(as_pt, torch.Tensor) and as_pt.shape == (3,) and as_pt.dtype == torch.float32
    as_pil = pipe(**{**inputs, "output_type": "pil"}).grounding_score
    assert isinstance(as_pil, list) and all(isinstance(s, float) for s in as_pil)
    np.testing.assert_array_equal(as_pt.numpy(), as_np)
    np.testing.assert_array_equal(np.float32(as_pil), as_np)
    assert len(set(as_np.tolist())) == 3  # it depends on the prompt
    assert len(pipe(**inputs, return_dict=False)) == 3  # the tuple keeps (alpha, coarse_alpha, transparency)


def test_deterministic_and_independent_of_the_batch_and_the_output_size(pipe):
    inputs = get_dummy_inputs()
    images = [inputs["image"], get_dummy_inputs(seed=1)["image"], get_dummy_inputs(seed=2)["image"]]
    singles = [pipe(**{**inputs, "image": im, "prompt": p}).grounding_score[0] for im, p in zip(images, PROMPTS)]
    assert pipe(**{**inputs, "image": images[0], "prompt": PROMPTS[0]}).grounding_score[0] == singles[0]
    for batch_size in (1, 2, 3):
        batched = pipe(**{**inputs, "image": images, "prompt": PROMPTS, "batch_size": batch_size}).grounding_score
        np.testing.assert_allclose(batched, singles, atol=1e-6, rtol=0)
    # one image with several prompts, in another order, with a repeated prompt
    several = pipe(**{**inputs, "prompt": [PROMPTS[2], PROMPTS[0], PROMPTS[2]], "batch_size": 3}).grounding_score
    alone = [pipe(**{**inputs, "prompt": p}).grounding_score[0] for p in (PROMPTS[2], PROMPTS[0])]
    np.testing.assert_allclose(several, [alone[0], alone[1], alone[0]], atol=1e-6, rtol=0)
    # read before any resizing: the same at the processing size as at the input size
    small = pipe(**{**inputs, "match_input_resolution": False}).grounding_score
    np.testing.assert_allclose(small, pipe(**inputs).grounding_score, atol=0, rtol=0)


def test_images_of_other_sizes_in_one_call_keep_their_scores(pipe):
    inputs = get_dummy_inputs()
    wide = inputs["image"]
    tall = wide.transpose(-1, -2)[..., :36, :]  # another size: another padding, another batch
    alone = [pipe(**{**inputs, "image": im}).grounding_score[0] for im in (wide, tall)]
    together = pipe(**{**inputs, "image": [wide, tall], "batch_size": 2}).grounding_score
    np.testing.assert_allclose(together, alone, atol=1e-6, rtol=0)
