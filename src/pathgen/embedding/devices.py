"""Which devices embed on: ``device``/``devices`` of the config, checked before any work starts."""

from __future__ import annotations

from typing import Any


def resolve_devices(device: str | None, devices: list[str]) -> list[str]:
    """The torch devices to run one encoder each on.

    ``devices`` wins when given: ``['all']`` is every CUDA device of this machine (or the CPU when
    there is none); a list may name a device twice (two replicas: ``cpu,cpu`` tests the multi-device
    path anywhere). Empty ``devices`` means ``device`` alone (None = cuda when available). A device
    this machine lacks is a ``ValueError`` saying what it has.
    """
    import torch

    n_cuda = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if not devices:
        return [_check(device or ("cuda" if n_cuda else "cpu"), n_cuda)]
    if devices == ["all"]:
        return [f"cuda:{i}" for i in range(n_cuda)] or ["cpu"]
    return [_check(d, n_cuda) for d in devices]


def _check(name: str, n_cuda: int) -> str:
    import torch

    try:
        dev = torch.device(name)
    except RuntimeError as exc:
        raise ValueError(f"unknown device {name!r}; use cpu, cuda, cuda:N or all") from exc
    if dev.type == "cuda":
        if not n_cuda:
            raise ValueError(f"device {name!r} asked for, but torch sees no CUDA device here; use cpu")
        if dev.index is not None and dev.index >= n_cuda:
            raise ValueError(f"device {name!r} asked for, but this machine has {n_cuda} CUDA device(s)")
    return str(dev)


def device_names(devices: list[str]) -> list[str]:
    """A readable name per device (the GPU model, or the CPU), for summaries and benchmark records."""
    import platform

    import torch

    out = []
    for name in devices:
        dev: Any = torch.device(name)
        if dev.type == "cuda":
            out.append(torch.cuda.get_device_name(dev))
        else:
            out.append(_cpu_model() or platform.processor() or platform.machine() or "cpu")
    return out


def _cpu_model() -> str:
    """The CPU's model name on Linux ('' elsewhere)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""
