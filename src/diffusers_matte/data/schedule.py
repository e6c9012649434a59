# Copyright 2026 The diffusers-matte authors. Licensed under the Apache License, Version 2.0.
"""The paper's data schedule (Sec. 4.1), usable with any subset of the sets.

"We train the model on RefMatte during odd-numbered iterations and on RefCOCO in every even iteration. We also insert
a special iteration after every 4 iterations to perform training on P3M10K, AM2K, and RM1K. We randomly select 1
dataset among the 3." Read as a period of five: RefMatte, RefCOCO, RefMatte, RefCOCO, special.

Fallbacks when sets are missing (RM-1k was never published, so the special pool is usually P3M-10k and AM-2k):

* odd source missing -> its iterations use the even source, and the other way round;
* both missing -> every regular iteration is drawn from the special pool as well;
* special pool empty -> no special iteration (plain alternation, period four);
* nothing available -> error.

The choice at every step depends only on ``(seed, step)``, so a resumed run sees the same sources.
"""

from __future__ import annotations

import bisect
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Sequence

import numpy as np
import torch

DEFAULT_ODD = "refmatte"
DEFAULT_EVEN = "refcoco"
DEFAULT_SPECIAL = ("p3m10k", "am2k", "rm1k")


class DataSchedule:
    """Which source trains at each step (0-based ``step``; the paper's iteration numbers are ``step + 1``).

    Args:
        available: names of the sets the user has (e.g. ``["refmatte", "refcoco", "am2k"]``).
        odd / even: sources of the odd and even regular iterations (RefMatte and RefCOCO in the paper).
        special: pool of the special iteration (P3M-10k, AM-2k, RM-1k in the paper); only available ones are used.
        period: regular iterations between two special ones (4 in the paper).
        seed: seed of the special-iteration draws.
    """

    def __init__(
        self,
        available: Sequence[str],
        odd: str = DEFAULT_ODD,
        even: str = DEFAULT_EVEN,
        special: Sequence[str] = DEFAULT_SPECIAL,
        period: int = 4,
        seed: int = 0,
    ):
        available = list(dict.fromkeys(available))
        if not available:
            raise ValueError("DataSchedule needs at least one available set")
        if period < 1:
            raise ValueError(f"period must be >= 1, got {period}")
        roles = {odd, even, *special}
        unused = [name for name in available if name not in roles]
        if unused:
            raise ValueError(
                f"sets {unused} have no role; available sets must be the odd ({odd!r}), even ({even!r}) or special "
                f"({list(special)}) source"
            )
        self.special = [name for name in special if name in available]
        odd_ok, even_ok = odd in available, even in available
        self.odd = odd if odd_ok else (even if even_ok else None)
        self.even = even if even_ok else (odd if odd_ok else None)
        self.period = period
        self.seed = seed

    @property
    def cycle(self) -> int:
        """Steps per cycle: ``period`` regular steps plus one special step when a special set exists."""
        return self.period + 1 if self.special else self.period

    def _draw_special(self, step: int) -> str:
        rng = np.random.default_rng([self.seed, step])
        return self.special[int(rng.integers(len(self.special)))]

    def source(self, step: int) -> str:
        """The source of 0-based training step ``step``."""
        if step < 0:
            raise ValueError(f"step must be >= 0, got {step}")
        position = step % self.cycle
        if position == self.period:  # the special iteration after every `period` regular ones
            return self._draw_special(step)
        if self.odd is None:  # neither regular source: the special pool covers every step
            return self._draw_special(step)
        regular_index = (step // self.cycle) * self.period + position
        return self.odd if regular_index % 2 == 0 else self.even  # paper iteration 1, 3, ... are odd

    def sources(self, start: int, stop: int) -> List[str]:
        return [self.source(step) for step in range(start, stop)]

    def __iter__(self) -> Iterator[str]:
        step = 0
        while True:
            yield self.source(step)
            step += 1


class ProportionalSchedule:
    """A schedule that draws each step's source with probability proportional to its number of rows (``mix``).

    Like :class:`DataSchedule`, the choice at every step depends only on ``(seed, step)``.
    """

    def __init__(self, lengths: Mapping[str, int], seed: int = 0):
        if not lengths or any(n <= 0 for n in lengths.values()):
            raise ValueError(f"ProportionalSchedule needs sets with rows, got {dict(lengths)}")
        self.names = list(lengths)
        total = float(sum(lengths.values()))
        self.probabilities = np.array([lengths[n] / total for n in self.names])
        self.seed = seed

    def source(self, step: int) -> str:
        if step < 0:
            raise ValueError(f"step must be >= 0, got {step}")
        rng = np.random.default_rng([self.seed, step])
        return self.names[int(rng.choice(len(self.names), p=self.probabilities))]

    def sources(self, start: int, stop: int) -> List[str]:
        return [self.source(step) for step in range(start, stop)]


class MultiSourceDataset(torch.utils.data.Dataset):
    """Concatenation of named datasets with a global index (the index space of :class:`ScheduledBatchSampler`).

    ``transform`` (e.g. :class:`~diffusers_matte.data.transforms.TrainingTransform`) is applied to every row.
    """

    def __init__(
        self,
        datasets: Mapping[str, Any],
        transform: Optional[Callable[[Dict[str, Any]], Any]] = None,
    ):
        if not datasets:
            raise ValueError("MultiSourceDataset needs at least one dataset")
        self.names = list(datasets)
        self.datasets = dict(datasets)
        self.offsets = np.cumsum([0] + [len(datasets[n]) for n in self.names]).tolist()
        self.transform = transform

    @property
    def lengths(self) -> Dict[str, int]:
        return {name: len(self.datasets[name]) for name in self.names}

    def __len__(self) -> int:
        return self.offsets[-1]

    def locate(self, index: int):
        """``(source name, local index)`` of global ``index``."""
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} rows")
        k = bisect.bisect_right(self.offsets, index) - 1
        return self.names[k], index - self.offsets[k]

    def __getitem__(self, index: int):
        name, local = self.locate(index)
        row = self.datasets[name][local]
        return self.transform(row) if self.transform is not None else row


class ScheduledBatchSampler(torch.utils.data.Sampler):
    """Yields one batch of global indices per step, all from the step's scheduled source.

    Each source is read in a fresh seeded permutation per epoch of that source. ``start_step`` resumes a run:
    the sampler skips exactly the samples earlier steps consumed, so the stream continues where it stopped.

    Args:
        lengths: ``{source: number of rows}`` in the order of the concatenated dataset (``MultiSourceDataset``).
        batch_size: rows per step.
        schedule: the :class:`DataSchedule` (default: the paper's, over the sources in ``lengths``).
        num_steps: steps to yield (``None``: endless, and ``len()`` is undefined).
        start_step: first step to yield.
        seed: seed of the per-source permutations.
    """

    def __init__(
        self,
        lengths: Mapping[str, int],
        batch_size: int,
        schedule: Optional[DataSchedule] = None,
        num_steps: Optional[int] = None,
        start_step: int = 0,
        seed: int = 0,
    ):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        empty = [name for name, n in lengths.items() if n <= 0]
        if empty:
            raise ValueError(f"sources {empty} have no rows")
        self.names = list(lengths)
        self.lengths = dict(lengths)
        self.offsets = dict(zip(self.names, np.cumsum([0] + [lengths[n] for n in self.names]).tolist()))
        self.schedule = schedule or DataSchedule(self.names, seed=seed)
        self.batch_size = batch_size
        self.num_steps = num_steps
        self.start_step = start_step
        self.seed = seed
        self._cache: Dict[str, Any] = {}

    def __len__(self) -> int:
        if self.num_steps is None:
            raise TypeError("an endless ScheduledBatchSampler (num_steps=None) has no length")
        return max(self.num_steps - self.start_step, 0)

    def _permutation(self, name: str, epoch: int) -> np.ndarray:
        rng = np.random.default_rng([self.seed, self.names.index(name), epoch])
        return rng.permutation(self.lengths[name])

    def __iter__(self) -> Iterator[List[int]]:
        consumed = dict.fromkeys(self.names, 0)
        for step in range(self.start_step):  # replay the sources of the skipped steps (cheap: no data is read)
            consumed[self._source(step)] += self.batch_size
        step = self.start_step
        while self.num_steps is None or step < self.num_steps:
            name = self._source(step)
            batch = []
            for _ in range(self.batch_size):
                epoch, position = divmod(consumed[name], self.lengths[name])
                batch.append(self.offsets[name] + int(self._cached_permutation(name, epoch)[position]))
                consumed[name] += 1
            yield batch
            step += 1

    def _cached_permutation(self, name: str, epoch: int) -> np.ndarray:
        if self._cache.get(name, (None,))[0] != epoch:
            self._cache[name] = (epoch, self._permutation(name, epoch))
        return self._cache[name][1]

    def _source(self, step: int) -> str:
        name = self.schedule.source(step)
        if name not in self.lengths:
            raise ValueError(f"the schedule chose {name!r} at step {step}, which is not in lengths {self.names}")
        return name
