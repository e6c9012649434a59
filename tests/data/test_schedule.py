"""Tests for the data schedule of paper Sec. 4.1 and its sampler."""

from collections import Counter

import datasets
import pytest
import torch

from diffusers_matte.data.schedule import (
    DataSchedule,
    MultiSourceDataset,
    ScheduledBatchSampler,
)

ALL = ["refmatte", "refcoco", "p3m10k", "am2k", "rm1k"]


def test_paper_order_with_all_sets():
    schedule = DataSchedule(ALL, seed=0)
    sources = schedule.sources(0, 50)
    for cycle in range(10):
        block = sources[5 * cycle : 5 * cycle + 5]
        assert block[:4] == [
            "refmatte",
            "refcoco",
            "refmatte",
            "refcoco",
        ]  # iterations 1..4: odd/even
        assert block[4] in (
            "p3m10k",
            "am2k",
            "rm1k",
        )  # the special iteration after every 4
    specials = Counter(schedule.sources(0, 3000)[4::5])
    assert set(specials) == {"p3m10k", "am2k", "rm1k"}
    assert min(specials.values()) > 150  # roughly uniform over 600 draws


def test_schedule_is_deterministic_per_step_and_seed():
    a, b = DataSchedule(ALL, seed=1), DataSchedule(ALL, seed=1)
    assert a.sources(0, 200) == b.sources(0, 200) == [a.source(s) for s in range(200)]
    assert a.sources(0, 200) != DataSchedule(ALL, seed=2).sources(0, 200)
    assert next(iter(a)) == "refmatte"


def test_fallbacks():
    # RM-1k absent: special pool is P3M-10k and AM-2k
    no_rm1k = DataSchedule(["refmatte", "refcoco", "p3m10k", "am2k"]).sources(0, 500)
    assert set(no_rm1k[4::5]) == {"p3m10k", "am2k"}
    # no special set: plain alternation
    assert DataSchedule(["refmatte", "refcoco"]).sources(0, 6) == ["refmatte", "refcoco"] * 3
    # RefCOCO missing: its iterations use RefMatte; the special iteration stays
    only_refmatte = DataSchedule(["refmatte", "am2k"]).sources(0, 10)
    assert only_refmatte == ["refmatte"] * 4 + ["am2k"] + ["refmatte"] * 4 + ["am2k"]
    # RefMatte missing: RefCOCO everywhere regular
    assert DataSchedule(["refcoco"]).sources(0, 5) == ["refcoco"] * 5
    # only special sets: every step drawn from the pool
    specials_only = DataSchedule(["p3m10k", "am2k"]).sources(0, 100)
    assert set(specials_only) == {"p3m10k", "am2k"}
    # custom roles, e.g. the synthetic set in RefMatte's place
    assert DataSchedule(["synthetic", "refcoco"], odd="synthetic").sources(0, 2) == [
        "synthetic",
        "refcoco",
    ]


def test_schedule_rejects_bad_input():
    with pytest.raises(ValueError, match="at least one"):
        DataSchedule([])
    with pytest.raises(ValueError, match="no role"):
        DataSchedule(["refmatte", "coco_stuff"])
    with pytest.raises(ValueError, match="period"):
        DataSchedule(ALL, period=0)
    with pytest.raises(ValueError, match="step"):
        DataSchedule(ALL).source(-1)


def _lengths():
    return {"refmatte": 7, "refcoco": 5, "am2k": 3}


def test_sampler_batches_follow_schedule_and_cover_each_source():
    lengths = _lengths()
    sampler = ScheduledBatchSampler(lengths, batch_size=2, num_steps=40, seed=0)
    offsets = {"refmatte": (0, 7), "refcoco": (7, 12), "am2k": (12, 15)}
    batches = list(sampler)
    assert len(batches) == len(sampler) == 40
    seen = {name: [] for name in lengths}
    for step, batch in enumerate(batches):
        name = sampler.schedule.source(step)
        lo, hi = offsets[name]
        assert len(batch) == 2 and all(lo <= i < hi for i in batch)
        seen[name].extend(batch)
    # each epoch of a source is a permutation: the first len(source) draws have no repeats
    for name, (lo, hi) in offsets.items():
        assert sorted(seen[name][: hi - lo]) == list(range(lo, hi))


def test_sampler_resumes_exactly():
    full = list(ScheduledBatchSampler(_lengths(), batch_size=3, num_steps=30, seed=4))
    resumed = list(ScheduledBatchSampler(_lengths(), batch_size=3, num_steps=30, start_step=17, seed=4))
    assert resumed == full[17:]
    endless = ScheduledBatchSampler(_lengths(), batch_size=1)
    with pytest.raises(TypeError):
        len(endless)
    it = iter(endless)
    assert len([next(it) for _ in range(100)]) == 100
    with pytest.raises(ValueError, match="batch_size"):
        ScheduledBatchSampler(_lengths(), batch_size=0)
    with pytest.raises(ValueError, match="no rows"):
        ScheduledBatchSampler({"refmatte": 0}, batch_size=1)
    bad = ScheduledBatchSampler({"refmatte": 2}, batch_size=1, schedule=DataSchedule(["refcoco"]), num_steps=1)
    with pytest.raises(ValueError, match="not in lengths"):
        list(bad)


def test_multi_source_dataset_with_dataloader():
    sets = {
        name: datasets.Dataset.from_dict({"source": [name] * n, "local": list(range(n))})
        for name, n in _lengths().items()
    }
    data = MultiSourceDataset(sets, transform=lambda row: (row["source"], row["local"]))
    assert len(data) == 15 and data.locate(7) == ("refcoco", 0) and data[14] == ("am2k", 2)
    with pytest.raises(IndexError):
        data.locate(15)
    sampler = ScheduledBatchSampler(data.lengths, batch_size=2, num_steps=10)
    loader = torch.utils.data.DataLoader(data, batch_sampler=sampler, collate_fn=list)
    for step, batch in enumerate(loader):
        assert {source for source, _ in batch} == {sampler.schedule.source(step)}
