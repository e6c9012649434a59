"""The replication benchmark's statistics: group bootstrap, paired differences, latent-grid ceiling, areas."""

import sys
import time
from pathlib import Path

import numpy as np
import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import ablation_statistics as stats  # noqa: E402

TEXT_TYPES = ("short", "long", "spatial", "attribute")


def _rows(num_instances, seed=0, shift=0.0):
    """samples.csv-like rows: four expressions per instance, with an instance effect shared by all four."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(num_instances):
        level = rng.gamma(2.0, 0.5)
        for t, kind in enumerate(TEXT_TYPES):
            noise = rng.normal(0.0, 0.05, size=4)
            rows.append(
                {
                    "instance_id": f"inst_{i:04d}",
                    "text_index": t,
                    "text_type": kind,
                    "image_id": f"img_{i:04d}",
                    "sad": level + noise[0] + shift,
                    "mse": 0.01 * level + noise[1] ** 2,
                    "grad": level + noise[2],
                    "conn": level + noise[3],
                }
            )
    return rows


def _disc(size, radius):
    yy, xx = np.mgrid[:size, :size]
    centre = (size - 1) / 2
    return (((yy - centre) ** 2 + (xx - centre) ** 2) <= radius**2).astype(np.float64)


# bootstrap_interval ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_interval_contains_the_mean(seed):
    rng = np.random.default_rng(seed)
    values = rng.exponential(1.0, size=400)
    groups = np.repeat(np.arange(100), 4)
    mean, low, high = stats.bootstrap_interval(values, groups, seed=seed)
    assert mean == pytest.approx(values.mean())
    assert low < mean < high


def test_interval_narrows_with_more_groups():
    rng = np.random.default_rng(0)
    few = rng.normal(size=40)
    many = rng.normal(size=4000)
    _, lo_few, hi_few = stats.bootstrap_interval(few, np.repeat(np.arange(10), 4))
    _, lo_many, hi_many = stats.bootstrap_interval(many, np.repeat(np.arange(1000), 4))
    assert hi_many - lo_many < 0.25 * (hi_few - lo_few)


def test_resampling_is_by_group():
    # 20 groups of 50 identical samples: 20 independent values, not 1000.
    rng = np.random.default_rng(0)
    values = np.repeat(rng.normal(size=20), 50)
    groups = np.repeat(np.arange(20), 50)
    _, lo_group, hi_group = stats.bootstrap_interval(values, groups)
    _, lo_sample, hi_sample = stats.bootstrap_interval(values, np.arange(values.size))
    # Expected ratio sqrt(50) ~ 7.
    assert hi_group - lo_group > 4.0 * (hi_sample - lo_sample)


def test_groups_of_different_sizes_weigh_as_in_the_plain_mean():
    values = np.array([0.0] * 9 + [1.0])
    groups = np.array([0] * 9 + [1])
    mean, low, high = stats.bootstrap_interval(values, groups, num_resamples=500)
    assert mean == pytest.approx(0.1)
    assert 0.0 <= low <= mean <= high <= 1.0


def test_deterministic_for_a_seed():
    rng = np.random.default_rng(3)
    values, groups = rng.random(200), np.repeat(np.arange(50), 4)
    first = stats.bootstrap_interval(values, groups, seed=7)
    assert stats.bootstrap_interval(values, groups, seed=7) == first
    assert stats.bootstrap_interval(values, groups, seed=8) != first


def test_fast_enough():
    rng = np.random.default_rng(0)
    values = rng.random(1000)
    groups = np.repeat([f"inst_{i}" for i in range(250)], 4)
    stats.bootstrap_interval(values, groups, num_resamples=10)  # warm-up
    start = time.perf_counter()
    stats.bootstrap_interval(values, groups, num_resamples=2000)
    assert time.perf_counter() - start < 1.0


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(values=[], groups=[]), "empty"),
        (dict(values=[1.0, 2.0], groups=[0]), "same length"),
        (dict(values=[1.0, float("nan")], groups=[0, 1]), "NaN"),
        (dict(values=[1.0, 2.0], groups=[0, 1], confidence=1.0), "confidence"),
    ],
)
def test_bad_inputs_raise(kwargs, message):
    with pytest.raises(ValueError, match=message):
        stats.bootstrap_interval(**kwargs)


# summarize_samples -----------------------------------------------------------------------------------------------


def test_summarize_samples_all_and_per_text_type():
    rows = _rows(30)
    summary = stats.summarize_samples(rows, num_resamples=300, seed=5)
    assert set(summary) == {"all", "per_text_type"}
    assert list(summary["per_text_type"]) == list(TEXT_TYPES)
    assert set(summary["all"]) == {"sad", "mse", "grad", "conn"}
    sad = [r["sad"] for r in rows]
    groups = [r["instance_id"] for r in rows]
    assert summary["all"]["sad"] == stats.bootstrap_interval(sad, groups, num_resamples=300, seed=5)
    spatial = [r["grad"] for r in rows if r["text_type"] == "spatial"]
    mean, low, high = summary["per_text_type"]["spatial"]["grad"]
    assert mean == pytest.approx(np.mean(spatial))
    assert low < mean < high


def test_summarize_samples_missing_metric_raises():
    with pytest.raises(ValueError, match="'time_ms'"):
        stats.summarize_samples(_rows(3), metrics=("sad", "time_ms"))


# paired_difference -----------------------------------------------------------------------------------------------


def test_paired_difference_of_identical_runs_is_zero():
    rows = _rows(20)
    assert stats.paired_difference(rows, list(reversed(rows))) == (0.0, 0.0, 0.0)


def test_paired_difference_of_a_shifted_run():
    rows = _rows(20)
    shifted = _rows(20, shift=0.1)
    mean, low, high = stats.paired_difference(shifted, rows)
    assert mean == pytest.approx(0.1, abs=1e-12)
    assert low == pytest.approx(0.1, abs=1e-12)
    assert high == pytest.approx(0.1, abs=1e-12)


def test_paired_difference_tells_a_small_shift_from_noise_when_intervals_overlap():
    rows, better = _rows(40), _rows(40, shift=-0.05)
    rng = np.random.default_rng(1)
    for row in better:
        row["sad"] += rng.normal(0.0, 0.02)
    _, lo_a, hi_a = stats.summarize_samples(rows)["all"]["sad"]
    _, lo_b, hi_b = stats.summarize_samples(better)["all"]["sad"]
    assert lo_a < hi_b and lo_b < hi_a  # the two runs' intervals overlap
    _, low, high = stats.paired_difference(better, rows)
    assert high < 0.0


def test_paired_difference_of_mismatched_samples_raises():
    rows = _rows(5)
    with pytest.raises(ValueError, match="same samples"):
        stats.paired_difference(rows[:-1], rows)
    with pytest.raises(ValueError, match="twice"):
        stats.paired_difference(rows + rows[:1], rows)


# latent_grid_ceiling ---------------------------------------------------------------------------------------------


def test_ceiling_of_a_constant_alpha_is_zero():
    result = stats.latent_grid_ceiling([np.full((128, 128), 0.7)], 64, 4)
    assert result["ceiling_sad"] == pytest.approx(0.0, abs=1e-4)
    assert result["empty_sad"] == pytest.approx(0.7 * 128 * 128 / 1000, rel=1e-5)
    assert result["ratio"] == pytest.approx(0.0, abs=1e-5)


def test_ceiling_of_a_constant_non_square_alpha_with_padding_is_zero():
    # 96 x 128 -> 48 x 64, padded to 64 x 64: the replicate padding keeps the constant.
    result = stats.latent_grid_ceiling([np.full((96, 128), 0.3)], 64, 4, pad_multiple=64)
    assert result["ceiling_sad"] == pytest.approx(0.0, abs=1e-4)


@pytest.mark.parametrize("size, resolution", [(64, 64), (128, 64)])
def test_ceiling_of_a_pixel_checkerboard_is_the_empty_matte(size, resolution):
    yy, xx = np.mgrid[:size, :size]
    board = ((yy + xx) % 2).astype(np.float64)
    result = stats.latent_grid_ceiling([board], resolution, 4)
    assert result["empty_sad"] == pytest.approx(board.sum() / 1000)
    assert result["ratio"] == pytest.approx(1.0, abs=0.01)


def test_ceiling_ratio_decreases_for_a_larger_disc():
    ratios = [stats.latent_grid_ceiling([_disc(128, r)], 64, 4)["ratio"] for r in (12, 24, 48)]
    assert ratios[0] > ratios[1] > ratios[2]
    # A coarser grid resolves the same disc less well.
    coarse = stats.latent_grid_ceiling([_disc(128, 24)], 32, 4)["ratio"]
    assert coarse > ratios[1]


def test_ceiling_averages_over_alphas():
    alphas = [_disc(64, 10), _disc(64, 20)]
    both = stats.latent_grid_ceiling(alphas, 32, 4)
    each = [stats.latent_grid_ceiling([a], 32, 4) for a in alphas]
    for key in ("ceiling_sad", "empty_sad"):
        assert both[key] == pytest.approx(np.mean([e[key] for e in each]))
    assert both["ratio"] == pytest.approx(both["ceiling_sad"] / both["empty_sad"])


def test_ceiling_bad_inputs_raise():
    with pytest.raises(ValueError, match="pad_multiple"):
        stats.latent_grid_ceiling([np.zeros((8, 8))], 8, 4, pad_multiple=6)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        stats.latent_grid_ceiling([np.full((8, 8), 255.0)], 8, 4)
    with pytest.raises(ValueError, match="empty"):
        stats.latent_grid_ceiling([], 8, 4)


# area_distribution and format_interval ---------------------------------------------------------------------------


def test_area_distribution_of_known_masks():
    masks = []
    for rows_covered in (0, 1, 2, 3, 4):
        mask = np.zeros((4, 4))
        mask[:rows_covered] = 0.5  # soft values count as covered
        masks.append(mask)
    result = stats.area_distribution(masks)
    assert result == pytest.approx({"mean": 0.5, "p10": 0.1, "p50": 0.5, "p90": 0.9, "min": 0.0, "max": 1.0})


def test_format_interval():
    assert stats.format_interval(0.41234, 0.38777, 0.4371) == "0.412 [0.388, 0.437]"
    assert stats.format_interval(3.0, 2.46, 3.26, digits=1) == "3.0 [2.5, 3.3]"
