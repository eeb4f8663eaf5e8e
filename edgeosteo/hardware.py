"""What the box's kernel reports under /proc: what CPU it has (read from /proc/cpuinfo, used
by the runtime, config, `edgeosteo info` and the benchmarks), which boot this is (the store
stamps it on outbox records) and how much memory a process holds (the benchmarks)."""

from __future__ import annotations

import os
import platform
from pathlib import Path

# instruction-set features that matter for the inference backends (x86 and ARM names)
INFERENCE_FEATURES = (
    "sse4_2",
    "avx",
    "avx2",
    "fma",
    "avx512f",
    "avx512_vnni",
    "avx_vnni",
    "amx_int8",
    "asimd",
    "asimddp",
    "sve",
    "i8mm",
)


def cpuinfo_text() -> str:
    """The contents of /proc/cpuinfo, or "" where there is none (not Linux)."""
    try:
        return Path("/proc/cpuinfo").read_text()
    except OSError:
        return ""


def physical_cores(cpuinfo: str | None = None) -> int:
    """Physical cores from /proc/cpuinfo (Linux); logical count elsewhere."""
    text = cpuinfo_text() if cpuinfo is None else cpuinfo
    cores: set[tuple[str, str]] = set()
    physical = ""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "physical id":
            physical = value.strip()
        elif key == "core id":
            cores.add((physical, value.strip()))
    return len(cores) or os.cpu_count() or 1


def cpu_model(cpuinfo: str | None = None) -> str:
    text = cpuinfo_text() if cpuinfo is None else cpuinfo
    for line in text.splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def cpu_features(cpuinfo: str | None = None) -> list[str]:
    """The INFERENCE_FEATURES this CPU reports, in that order."""
    text = cpuinfo_text() if cpuinfo is None else cpuinfo
    for line in text.splitlines():
        if line.startswith(("flags", "Features")):
            flags = set(line.split(":", 1)[1].split())
            return [f for f in INFERENCE_FEATURES if f in flags]
    return []


def boot_id() -> str:
    """This boot's random id from the kernel, or "unknown" where there is none."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return "unknown"


def process_memory_kb(pid: int, fields: tuple[str, ...] = ("VmRSS", "VmHWM")) -> dict[str, int]:
    """The ``fields`` of /proc/<pid>/status that the process reports, in kB (VmRSS: resident
    now, VmHWM: the peak)."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in fields:
            values[key] = int(rest.split()[0])
    return values
