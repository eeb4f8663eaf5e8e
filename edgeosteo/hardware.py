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


# MIDR part numbers of Arm Ltd. cores (CPU implementer 0x41) on small boards and servers;
# an arm64 kernel's /proc/cpuinfo names no model, only these numbers
ARM_CORES = {
    0xD03: "Cortex-A53",
    0xD04: "Cortex-A35",
    0xD05: "Cortex-A55",
    0xD07: "Cortex-A57",
    0xD08: "Cortex-A72",
    0xD09: "Cortex-A73",
    0xD0A: "Cortex-A75",
    0xD0B: "Cortex-A76",
    0xD0C: "Neoverse-N1",
    0xD0D: "Cortex-A77",
    0xD40: "Neoverse-V1",
    0xD41: "Cortex-A78",
    0xD42: "Cortex-A78AE",
    0xD44: "Cortex-X1",
    0xD46: "Cortex-A510",
    0xD47: "Cortex-A710",
    0xD48: "Cortex-X2",
    0xD49: "Neoverse-N2",
    0xD4B: "Cortex-A78C",
    0xD4F: "Neoverse-V2",
    0xD80: "Cortex-A520",
    0xD81: "Cortex-A720",
    0xD82: "Cortex-X4",
}


def _arm_cores(text: str) -> str:
    """The cores of an arm64 /proc/cpuinfo, e.g. "4x Cortex-A55 + 4x Cortex-A76" ("" for
    any other)."""
    counts: dict[str, int] = {}
    implementer = ""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key, value = key.strip(), value.strip()
        if key == "CPU implementer":
            implementer = value
        elif key == "CPU part":
            try:
                part = int(value, 16)
            except ValueError:
                continue
            known = ARM_CORES.get(part) if implementer == "0x41" else None
            name = known or f"implementer {implementer} part {value}"
            counts[name] = counts.get(name, 0) + 1
    return " + ".join(f"{n}x {name}" for name, n in counts.items())


def cpu_model(cpuinfo: str | None = None) -> str:
    """x86: the "model name"; arm64: the board (Raspberry Pi kernels add a "Model" line)
    and its cores from their part numbers."""
    text = cpuinfo_text() if cpuinfo is None else cpuinfo
    board = ""
    for line in text.splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
        if line.startswith("Model") and ":" in line:
            board = line.split(":", 1)[1].strip()
    cores = _arm_cores(text)
    if cores:
        return f"{board} ({cores})" if board else cores
    return board or platform.processor() or "unknown"


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
