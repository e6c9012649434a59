# Copyright 2026 The diffusers-matte authors. Licensed under the Apache License, Version 2.0.
"""The processes of a run: one plain process, or the N that ``accelerate launch`` (or ``torchrun``) started.

Evaluation, ``predict`` and batch matting split their work with :meth:`Processes.split` (contiguous shares, as
accelerate's ``PartialState().split_between_processes``), each process on its own device, and meet with
:meth:`Processes.wait_for_everyone`, :meth:`Processes.gather_object` and :meth:`Processes.broadcast_object`.

Under a launcher (``WORLD_SIZE`` > 1 in the environment, or ``torch.distributed`` already set up), the state is
accelerate's :class:`~accelerate.PartialState`: one GPU per process (NCCL), or CPU processes with gloo where torch
sees no GPU or ``ACCELERATE_USE_CPU=1``. Otherwise nothing distributed is initialised and every method is trivial.
"""

from __future__ import annotations

import contextlib
import os
from typing import Any, Iterator, List, Optional, Sequence, TypeVar

T = TypeVar("T")


def _launched() -> bool:
    try:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            return True
    except ImportError:  # pragma: no cover - torch is a dependency
        pass
    for name in ("WORLD_SIZE", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE"):
        try:
            if int(os.environ.get(name, "1")) > 1:
                return True
        except ValueError:
            pass
    return False


class Processes:
    """Rank, size and device of the current process group, with the few collectives the harness needs.

    Use :func:`current_processes` rather than building one.
    """

    def __init__(self, state: Any = None):
        self._state = state

    @property
    def num_processes(self) -> int:
        return 1 if self._state is None else self._state.num_processes

    @property
    def process_index(self) -> int:
        return 0 if self._state is None else self._state.process_index

    @property
    def is_main_process(self) -> bool:
        return self.process_index == 0

    @property
    def is_distributed(self) -> bool:
        return self.num_processes > 1

    @property
    def device(self):
        """This process's device under a launcher (``cuda:<local rank>``, or cpu); ``None`` in a plain process."""
        return None if self._state is None else self._state.device

    def split(self, items: Sequence[T]) -> List[T]:
        """This process's contiguous share of ``items``; the first ``len(items) % N`` processes get one more.

        The same shares as ``PartialState().split_between_processes``; a process may get none.
        """
        share, extra = divmod(len(items), self.num_processes)
        index = self.process_index
        start = index * share + min(index, extra)
        return list(items[start : start + share + (1 if index < extra else 0)])

    def wait_for_everyone(self) -> None:
        """A barrier (a no-op in one process)."""
        if self.is_distributed:
            self._state.wait_for_everyone()

    @contextlib.contextmanager
    def main_process_first(self) -> Iterator[None]:
        """Runs the block on the main process first, then on the others (e.g. to fill a cache once).

        The others start once the main process's block has ended, even with an error (they will usually meet the
        same error and report it, rather than wait for ever)."""
        if not self.is_main_process:
            self.wait_for_everyone()
        try:
            yield
        finally:
            if self.is_main_process:
                self.wait_for_everyone()

    def gather_object(self, obj: Any) -> List[Any]:
        """``obj`` of every process, in process order, on every process (picklable objects)."""
        if not self.is_distributed:
            return [obj]
        import torch.distributed as dist

        gathered: List[Any] = [None] * self.num_processes
        dist.all_gather_object(gathered, obj)
        return gathered

    def broadcast_object(self, obj: Any) -> Any:
        """The main process's ``obj`` on every process."""
        if not self.is_distributed:
            return obj
        import torch.distributed as dist

        box = [obj if self.is_main_process else None]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def __repr__(self) -> str:
        return f"Processes(process_index={self.process_index}, num_processes={self.num_processes})"


def current_processes() -> Processes:
    """The processes of this run: accelerate's state under a launcher, else a single trivial process."""
    if not _launched():
        return Processes()
    import torch
    from accelerate import PartialState
    from accelerate.utils import parse_flag_from_env

    # PartialState() alone does not set up CPU processes (gloo) unless told to use the CPU.
    cpu = parse_flag_from_env("ACCELERATE_USE_CPU") or not torch.cuda.is_available()
    return Processes(PartialState(cpu=cpu))


def process_device(requested: Optional[str], processes: Optional[Processes] = None) -> Optional[str]:
    """The device a process runs on: ``requested``, except that under a launcher an unset or unnumbered
    ``"cuda"`` becomes this process's own GPU (``cuda:<local rank>``)."""
    processes = processes or current_processes()
    if not processes.is_distributed or processes.device is None:
        return requested
    own = processes.device
    if requested is None or (requested == "cuda" and own.type == "cuda"):
        return str(own) if own.type != "cpu" else "cpu"
    return requested
