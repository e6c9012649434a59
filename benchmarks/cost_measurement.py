# Copyright 2026 The diffusers-matte authors. Licensed under the Apache License, Version 2.0.
"""What the benchmarks measure a model with: parameters, MACs (attention matmuls counted, via torch's flop counter),
and CPU latency timed interleaved across models so that the machine's drift cancels, with the foreign CPU load of
every call read from /proc/stat."""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # heavy imports stay inside functions
    from torch import nn

CLEAN_LOAD = 0.1  # a round is clean when every call saw less foreign CPU load than this (in CPUs)


# ---------------------------------------------------------------------------------------------------------
# Parameters and MACs


def count_parameters(unet: nn.Module) -> dict[str, int]:
    """Parameters with the prediction head, and as BK-SDM counts them (SD's latent `conv_out` instead)."""
    total = sum(p.numel() for p in unet.parameters())
    head = sum(p.numel() for p in unet.conv_out.parameters())
    latent_head = unet.config.block_out_channels[0] * 4 * 9 + 4
    return {"total": total, "latent_head": total - head + latent_head}


@dataclass
class MacCount:
    """Multiply-accumulates of one forward pass.

    Attributes:
        total: all counted MACs (convolutions, linear layers, matmuls, attention cores).
        attention: the QK^T and AV matmuls inside `scaled_dot_product_attention` calls.
        by_module: MACs per submodule name (as in `named_modules()`), nested modules included in parents.
    """

    total: int
    attention: int
    by_module: dict[str, int] = field(default_factory=dict)

    @property
    def conv_linear(self) -> int:
        """MACs outside the fused attention cores (the figure FlopCounterMode gives on CPU by itself)."""
        return self.total - self.attention


def _sdpa_ops() -> set:
    import torch

    aten = torch.ops.aten
    names = (
        "_scaled_dot_product_flash_attention_for_cpu",
        "_scaled_dot_product_flash_attention",
        "_scaled_dot_product_efficient_attention",
        "_scaled_dot_product_cudnn_attention",
    )
    return {getattr(aten, n) for n in names if hasattr(aten, n)}


def count_macs(model: nn.Module, *args: Any, **kwargs: Any) -> MacCount:
    """Count the MACs of `model(*args, **kwargs)` with `FlopCounterMode`, attention matmuls included.

    `FlopCounterMode` has no formula for the CPU kernel of `scaled_dot_product_attention`
    (`aten._scaled_dot_product_flash_attention_for_cpu`) and scores it as zero; here it is counted from the
    query, key and value shapes like the GPU kernels (2 matmuls). Attention computed with an explicit
    softmax (`bmm`/`baddbmm`) is counted too, but lands in `conv_linear`, not in `attention`. Works on any
    module, e.g. a tiny test UNet.
    """
    import torch
    from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count

    def sdpa_flops(query, key, value, *_args, out_shape=None, **_kwargs) -> int:
        return sdpa_flop_count(query, key, value)

    sdpa_ops = _sdpa_ops()
    counter = FlopCounterMode(display=False, custom_mapping=dict.fromkeys(sdpa_ops, sdpa_flops))
    with torch.inference_mode(), counter:
        model(*args, **kwargs)
    counts = counter.get_flop_counts()
    overall = counts.get("Global", {})
    prefix = f"{type(model).__name__}."
    by_module = {
        name[len(prefix) :]: sum(ops.values()) // 2 for name, ops in counts.items() if name.startswith(prefix)
    }
    return MacCount(
        total=sum(overall.values()) // 2,
        attention=sum(v for op, v in overall.items() if op in sdpa_ops) // 2,
        by_module=by_module,
    )


def appendix_sa_complexity(n: int, d: int, j: int = 1, phi_in_flops: bool = False) -> float:
    """Operation count of one self-attention layer by appendix 6.1: eq. (10) for j = 1, eq. (11) for j > 1.

    `phi_in_flops=False` reproduces the paper, which counts the down-sampling convolution phi as n d^2
    (multiply-adds) while every other term is in FLOPs; `True` counts phi as 2 n d^2 like the rest.
    """
    if j == 1:
        return 6 * n * d**2 + 4 * n**2 * d + 4 * n**2 - 1  # Eq. (10)
    m = n / j  # key / value tokens after phi
    phi = j * m * d * d * (2 if phi_in_flops else 1)
    return (  # Eq. (11)
        2 * n * d**2  # Q
        + 2 * m * d**2 * 2  # K^S, V^S
        + 2 * n * m * d  # Q K^S
        + n * m  # scaling by 1/sqrt(d)
        + 3 * n * m
        - 1  # softmax
        + 2 * n * m * d  # A V^S
        + phi
    )


# ---------------------------------------------------------------------------------------------------------
# Timing


def _busy_cpu_seconds() -> float:
    """CPU seconds spent busy by the whole machine since boot (all tenants), from /proc/stat."""
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = values
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


@dataclass
class Measured:
    """Wall time of a block of work and the CPU load others put on the machine meanwhile."""

    seconds: float = 0.0
    own_cpu: float = 0.0
    foreign_cpu: float = 0.0

    @property
    def foreign_load(self) -> float:
        """Average number of CPUs busy with other processes during the block."""
        return self.foreign_cpu / self.seconds if self.seconds else 0.0


class LoadMeter:
    """Context manager: wall time, own CPU time and foreign CPU time (other processes) of a block."""

    def __enter__(self) -> Measured:
        self.result = Measured()
        self._busy, self._own, self._wall = (
            _busy_cpu_seconds(),
            time.process_time(),
            time.perf_counter(),
        )
        return self.result

    def __exit__(self, *exc) -> None:
        wall, own = time.perf_counter(), time.process_time()
        self.result.seconds = wall - self._wall
        self.result.own_cpu = own - self._own
        foreign = _busy_cpu_seconds() - self._busy - self.result.own_cpu
        self.result.foreign_cpu = max(foreign, 0.0)


class ModuleTimer:
    """Wall time and input shape of chosen submodules during forward passes (pre- and post-hooks).

    The hooks cost microseconds; the layers they time take milliseconds.
    """

    def __init__(self, model: nn.Module, names: Iterable[str]):
        modules = dict(model.named_modules())
        self.times: dict[str, float] = {}
        self.shapes: dict[str, tuple[int, ...]] = {}
        self._started: dict[str, float] = {}
        self._handles = []
        for name in names:
            module = modules[name]
            self._handles.append(module.register_forward_pre_hook(partial(self._start, name)))
            self._handles.append(module.register_forward_hook(partial(self._stop, name)))

    def _start(self, name: str, module, args) -> None:
        if args and hasattr(args[0], "shape"):
            self.shapes[name] = tuple(args[0].shape)
        self._started[name] = time.perf_counter()

    def _stop(self, name: str, module, args, output) -> None:
        elapsed = time.perf_counter() - self._started.pop(name)
        self.times[name] = self.times.get(name, 0.0) + elapsed

    def reset(self) -> None:
        self.times = {}

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()


class CudaEventTimer(ModuleTimer):
    """`ModuleTimer` for modules running on a CUDA device: CUDA events bracket each call (host clocks would time
    the kernel launches, not the kernels); `times` waits for the device and reads the events."""

    def __init__(self, model: nn.Module, names: Iterable[str]):
        self._pending: list = []
        super().__init__(model, names)

    @property
    def times(self) -> dict[str, float]:
        import torch

        if self._pending:
            torch.cuda.synchronize()
            for name, start, end in self._pending:
                self._times[name] = self._times.get(name, 0.0) + start.elapsed_time(end) / 1e3
            self._pending = []
        return self._times

    @times.setter
    def times(self, value: dict[str, float]) -> None:
        self._times, self._pending = value, []

    def _start(self, name: str, module, args) -> None:
        import torch

        if args and hasattr(args[0], "shape"):
            self.shapes[name] = tuple(args[0].shape)
        self._started[name] = torch.cuda.Event(enable_timing=True)
        self._started[name].record()

    def _stop(self, name: str, module, args, output) -> None:
        import torch

        end = torch.cuda.Event(enable_timing=True)
        end.record()
        self._pending.append((name, self._started.pop(name), end))


def proc_status_bytes(field: str) -> int:
    """A memory field of `/proc/self/status` (`VmRSS`, `VmHWM`, ...) in bytes (Linux)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


def peak_memory_rise(fn, device_type: str = "cpu") -> int:
    """Bytes by which `fn()` raises the process's peak memory over what is resident before the call.

    CPU: the resident-set high-water mark (`VmHWM`), reset with `/proc/self/clear_refs` after freed heap memory
    is handed back to the system (`malloc_trim`), so that memory cached from earlier calls does not hide this
    call's allocations. CUDA: `torch.cuda.max_memory_allocated` over `torch.cuda.memory_allocated`.
    """
    import gc

    import torch

    gc.collect()
    if device_type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        fn()
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() - base
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: cached heap memory may hide part of the rise
        pass
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset VmHWM to the current resident set
    base = proc_status_bytes("VmRSS")
    fn()
    return proc_status_bytes("VmHWM") - base


def wait_for_quiet(limit: float, window: float = 1.0) -> float:
    """Sleep until other processes use less than `CLEAN_LOAD` CPUs over a `window`, for at most `limit`
    seconds; return the seconds waited. Sleeping costs the other tenants nothing, unlike timing under load.
    """
    started = time.perf_counter()
    while time.perf_counter() - started < limit:
        with LoadMeter() as measured:
            time.sleep(window)
        if measured.foreign_load < CLEAN_LOAD:
            break
    return time.perf_counter() - started


@dataclass
class CallRecord:
    """One timed UNet forward pass."""

    kind: str
    round: int
    measured: Measured
    module_times: dict[str, float]


def time_interleaved(
    models: dict[str, nn.Module],
    inputs: dict[str, tuple],
    rounds: int,
    warmup: int,
    timed_modules: dict[str, list[str]],
    min_clean_rounds: int = 0,
    max_rounds: int | None = None,
    quiet_wait: float = 0.0,
    progress: str = "",
    timer_class: type[ModuleTimer] = ModuleTimer,
) -> tuple[list[CallRecord], dict[str, dict[str, tuple[int, ...]]]]:
    """Run every model once per round, rotating which goes first; time each call and its timed modules.

    After `rounds` rounds, rounds continue until `min_clean_rounds` of them are clean (no call with a
    foreign load of `CLEAN_LOAD` or more) or `max_rounds` have run. Before each round it waits up to
    `quiet_wait` seconds for a quiet second (see `wait_for_quiet`). Models may share modules: each record keeps
    the module times of its own call only. `timer_class=CudaEventTimer` times the modules of CUDA models.
    """
    import torch
    from tqdm.auto import tqdm

    kinds = list(models)
    max_rounds = max(rounds, max_rounds or rounds)
    timers = {k: timer_class(models[k], timed_modules[k]) for k in kinds}
    records, clean, waited = [], 0, 0.0
    bar = tqdm(total=rounds, desc=progress, leave=False)
    try:
        with torch.inference_mode():
            for _ in range(warmup):
                for kind in kinds:
                    models[kind](*inputs[kind], return_dict=False)
            for r in range(max_rounds):
                if r >= rounds and clean >= min_clean_rounds:
                    break
                if r >= bar.total:
                    bar.total = r + 1
                waited += wait_for_quiet(quiet_wait)
                loads = []
                for kind in kinds[r % len(kinds) :] + kinds[: r % len(kinds)]:
                    timers[kind].reset()
                    with LoadMeter() as measured:
                        models[kind](*inputs[kind], return_dict=False)
                    # a copy: the hooks of a module shared with a later model would add that model's time
                    records.append(CallRecord(kind, r, measured, dict(timers[kind].times)))
                    loads.append(measured.foreign_load)
                clean += max(loads) < CLEAN_LOAD
                bar.set_postfix(clean=clean, waited=f"{waited:.0f}s")
                bar.update()
    finally:
        bar.close()
        for timer in timers.values():
            timer.remove()
    return records, {k: t.shapes for k, t in timers.items()}
