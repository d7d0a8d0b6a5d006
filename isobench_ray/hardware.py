"""What a benchmark slot knows of its machine: its cores, its GPUs' state (NVML), and telemetry per run.

Pure functions decide which cores a slot and its server and client get; `Gpus` wraps NVML (nvidia-ml-py),
and says so instead of failing where there is no NVML (a CPU-only node, this test machine).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Callable, Sequence

import psutil


def node_cores() -> tuple[int, ...]:
    """The cores this process may run on (a container's cpuset included)."""
    return tuple(sorted(os.sched_getaffinity(0)))


def share_cores(cores: Sequence[int], index: int, count: int) -> tuple[int, ...]:
    """Slot `index` of `count` on a node gets an even, contiguous share of `cores` (the rest go to the last)."""
    cores = sorted(cores)
    if count <= 1:
        return tuple(cores)
    size = max(1, len(cores) // count)
    start = min(index * size, max(0, len(cores) - size))
    end = len(cores) if index == count - 1 else start + size
    return tuple(cores[start:end])


def host_cores(node_gpus: int, keep: int, cores: Sequence[int] | None = None) -> tuple[int, ...]:
    """On a GPU node, the cores kept for everything but benchmarks (agent sessions, validation): the first
    `keep`, leaving at least one per GPU to the slots. () on a CPU-only node, whose one slot is the whole node
    and runs alone."""
    cores = sorted(node_cores() if cores is None else cores)
    keep = min(keep, len(cores) - node_gpus)
    return tuple(cores[:keep]) if node_gpus > 0 and keep > 0 else ()


def split_cores(cores: Sequence[int]) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(server cores, client cores), disjoint where there are two or more: the benchmark client needs
    little (a quarter, at least one); the engine and its threads get the rest. One core is shared."""
    cores = tuple(sorted(cores))
    if len(cores) < 2:
        return cores, cores
    client = max(1, len(cores) // 4)
    return cores[:-client], cores[-client:]


def busy_seconds(cores: Sequence[int]) -> float:
    """CPU time spent busy on these cores since boot, all processes together (user, system, irq...)."""
    wanted = set(cores)
    return sum(t.user + t.nice + t.system + getattr(t, "irq", 0) + getattr(t, "softirq", 0)
               for i, t in enumerate(psutil.cpu_times(percpu=True)) if i in wanted)


def outside_share(busy_s: float, own_s: float, duration_s: float, cores: Sequence[int]) -> float:
    """The share of the slot's core time that processes outside the slot used during a run."""
    if duration_s <= 0 or not cores:
        return 0.0
    return max(0.0, busy_s - own_s) / (duration_s * len(cores))


def cpu_telemetry() -> dict[str, float]:
    freq = psutil.cpu_freq()
    return {"load1": os.getloadavg()[0], **({"cpu_mhz": round(freq.current, 1)} if freq else {}), "time": time.time()}


@dataclass
class GpuCheck:
    clean: bool
    detail: str  # what was found, or why nothing was checked


class Gpus:
    """NVML for a slot's GPUs; every call is a no-op that says so where NVML is absent."""

    def __init__(self, ids: Sequence[int]):
        self.ids = tuple(ids)
        self.reason = ""
        self.nvml = None
        if not self.ids:
            self.reason = "no GPU in this slot"
            return
        try:
            import pynvml

            pynvml.nvmlInit()
            self.nvml = pynvml
        except Exception as exc:  # no library, no driver: a CPU-only node
            self.reason = f"NVML unavailable ({exc})"

    @property
    def available(self) -> bool:
        return self.nvml is not None

    def _handles(self):
        return [self.nvml.nvmlDeviceGetHandleByIndex(i) for i in self.ids]

    def _affinity(self, index: int) -> frozenset[int]:
        handle = self.nvml.nvmlDeviceGetHandleByIndex(index)
        words = self.nvml.nvmlDeviceGetCpuAffinity(handle, (os.cpu_count() + 63) // 64)
        return frozenset(w * 64 + b for w, word in enumerate(words) for b in range(64) if word >> b & 1) & set(node_cores())

    def slot_cores(self, node_gpus: int, exclude: Sequence[int] = ()) -> tuple[int, ...]:
        """This slot's cores: those local to its GPU (NUMA affinity from NVML) shared evenly among the GPUs
        that have the same ones; without NVML, the node's cores shared evenly among its GPUs. `exclude`: the
        node's host cores (host_cores), which no slot gets."""
        excluded = set(exclude)
        pool = [c for c in node_cores() if c not in excluded] or list(node_cores())
        if not self.ids:
            return tuple(pool)
        # a slot of several GPUs (tensor parallelism) owns the shares of each of them
        return tuple(sorted(set().union(*(self._gpu_cores(gpu, node_gpus, pool) for gpu in self.ids))))

    def _gpu_cores(self, gpu: int, node_gpus: int, pool: list[int]) -> tuple[int, ...]:
        if not self.available:
            return share_cores(pool, gpu, max(node_gpus, gpu + 1))
        allowed = set(pool)
        mine = self._affinity(gpu) & allowed
        peers = [i for i in range(self.nvml.nvmlDeviceGetCount()) if self._affinity(i) & allowed == mine]
        return share_cores(sorted(mine) or pool, peers.index(gpu), len(peers))

    def check_clean(self, rest_mb: float = 1024.0) -> GpuCheck:
        """No process on the GPUs and no more memory held than at rest."""
        if not self.available:
            return GpuCheck(True, f"not checked: {self.reason}")
        found = []
        for gpu, handle in zip(self.ids, self._handles()):
            procs = self.nvml.nvmlDeviceGetComputeRunningProcesses(handle)
            used = self.nvml.nvmlDeviceGetMemoryInfo(handle).used / 2**20
            if procs or used > rest_mb:
                found.append(f"gpu{gpu}: {len(procs)} process(es) {[p.pid for p in procs]}, {used:.0f} MiB used")
        return GpuCheck(not found, "; ".join(found) or "clean")

    def wait_clean(self, rest_mb: float, reap: Callable[[], object], wait_s: float = 10.0) -> GpuCheck:
        """check_clean, calling `reap` (the slot's own leftovers) and checking again until clean or `wait_s`
        is up: the driver frees a tree's memory a moment after its processes are gone (0.3-0.4 s on an H100)."""
        check = self.check_clean(rest_mb)
        deadline = time.monotonic() + wait_s
        while not check.clean and time.monotonic() < deadline:
            reap()
            time.sleep(0.5)
            check = self.check_clean(rest_mb)
        return check

    def telemetry(self) -> dict[str, float | str]:
        if not self.available:
            return {}
        out: dict[str, float | str] = {}
        for gpu, handle in zip(self.ids, self._handles()):
            nv = self.nvml
            out |= {f"gpu{gpu}_sm_mhz": nv.nvmlDeviceGetClockInfo(handle, nv.NVML_CLOCK_SM),
                    f"gpu{gpu}_mem_mhz": nv.nvmlDeviceGetClockInfo(handle, nv.NVML_CLOCK_MEM),
                    f"gpu{gpu}_temp_c": nv.nvmlDeviceGetTemperature(handle, nv.NVML_TEMPERATURE_GPU),
                    f"gpu{gpu}_power_w": nv.nvmlDeviceGetPowerUsage(handle) / 1000,
                    f"gpu{gpu}_throttle": nv.nvmlDeviceGetCurrentClocksThrottleReasons(handle)}
        return out


# NVML throttle reasons that mean the clocks were held down by power or heat, not by idleness
THROTTLE_MASK = 0x4 | 0x8 | 0x20 | 0x40 | 0x80  # sw power cap, hw slowdown, sw thermal, hw thermal, hw power brake


def throttled(telemetry: dict) -> bool:
    return any(k.endswith("_throttle") and int(v) & THROTTLE_MASK for k, v in telemetry.items())
