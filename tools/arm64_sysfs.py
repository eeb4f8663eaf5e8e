"""A synthetic /sys CPU tree and /proc/cpuinfo of a Cortex-A76 board, for tools/arm64-check.

Under qemu user-mode emulation the guest sees the x86-64 host's kernel: its /sys describes
x86 caches and its /proc/cpuinfo an Intel part. ONNX Runtime 1.32 (its cpuinfo library)
segfaults on import reading those as ARM, and OpenVINO 2026.4 segfaults compiling a model
when there is no /sys CPU tree at all (hwloc "failed to find sysfs cpu topology directory").
A real arm64 kernel gives both programs a /sys and a /proc/cpuinfo that agree with each
other; this writes such a pair for a Raspberry Pi 5 / RK3588 big core (Cortex-A76 r4p1:
64 KiB L1 I and D, 512 KiB L2 per core, 2 MiB shared L3), with as many cores as the host
lets this process run on (a thread pinned to a CPU the host does not have fails).

Host side, standard library only: python3 tools/arm64_sysfs.py SYS_DIR CPUINFO_FILE
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

# MIDR_EL1 of a Cortex-A76 r4p1 (implementer 0x41 Arm, variant 4, part 0xd0b, revision 1)
MIDR_EL1 = "0x00000000414fd0b1"
# the Features line of a Raspberry Pi 5 (Linux 6.x); qemu's cortex-a76 model offers these
FEATURES = (
    "fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc "
    "dcpop asimddp"
)
# level, type, size, line bytes, ways, shared by all cores
CACHES = (
    (1, "Data", "64K", 64, 4, False),
    (1, "Instruction", "64K", 64, 4, False),
    (2, "Unified", "512K", 64, 8, False),
    (3, "Unified", "2048K", 64, 16, True),
)


def _mask(cpus: list[int]) -> str:
    return format(sum(1 << c for c in cpus), "x")


def _cpu_list(cpus: list[int]) -> str:
    return f"{cpus[0]}-{cpus[-1]}" if len(cpus) > 1 else str(cpus[0])


def write_sysfs(root: Path, cores: int) -> None:
    def put(relative: str, text: str) -> None:
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text + "\n")

    every = list(range(cores))
    cpu = "devices/system/cpu"
    for name in ("possible", "present", "online"):
        put(f"{cpu}/{name}", _cpu_list(every))
    put(f"{cpu}/offline", "")
    put(f"{cpu}/kernel_max", "255")
    (root / "bus/cpu/devices").mkdir(parents=True, exist_ok=True)
    for c in every:
        base = f"{cpu}/cpu{c}"
        if c:  # cpu0 has no online switch on arm64 either
            put(f"{base}/online", "1")
        topology = f"{base}/topology"
        for name in ("core_id",):
            put(f"{topology}/{name}", str(c))
        for name in ("physical_package_id", "cluster_id", "die_id"):
            put(f"{topology}/{name}", "0")
        for name, cpus in (
            ("core_cpus", [c]),
            ("thread_siblings", [c]),
            ("core_siblings", every),
            ("package_cpus", every),
            ("cluster_cpus", every),
            ("die_cpus", every),
        ):
            put(f"{topology}/{name}", _mask(cpus))
            put(f"{topology}/{name}_list", _cpu_list(cpus))
        for index, (level, kind, size, line, ways, shared) in enumerate(CACHES):
            cache = f"{base}/cache/index{index}"
            cpus = every if shared else [c]
            put(f"{cache}/level", str(level))
            put(f"{cache}/type", kind)
            put(f"{cache}/size", size)
            put(f"{cache}/coherency_line_size", str(line))
            put(f"{cache}/ways_of_associativity", str(ways))
            put(f"{cache}/number_of_sets", str(int(size[:-1]) * 1024 // (line * ways)))
            put(f"{cache}/physical_line_partition", "1")
            put(f"{cache}/shared_cpu_map", _mask(cpus))
            put(f"{cache}/shared_cpu_list", _cpu_list(cpus))
            put(f"{cache}/id", "0" if shared else str(c))
            put(f"{cache}/allocation_policy", "ReadWriteAllocate")
        put(f"{base}/regs/identification/midr_el1", MIDR_EL1)
        put(f"{base}/regs/identification/revidr_el1", "0x0000000000000000")
        put(f"{base}/cpufreq/cpuinfo_max_freq", "2400000")
        put(f"{base}/cpufreq/cpuinfo_min_freq", "1500000")
        put(f"{base}/cpufreq/scaling_cur_freq", "2400000")
        os.symlink(f"../../../{base}", root / "bus/cpu/devices" / f"cpu{c}")
    node = "devices/system/node"
    for name in ("possible", "online", "has_cpu", "has_memory", "has_normal_memory"):
        put(f"{node}/{name}", "0")
    put(f"{node}/node0/cpulist", _cpu_list(every))
    put(f"{node}/node0/cpumap", _mask(every))
    put(f"{node}/node0/distance", "10")
    put(
        f"{node}/node0/meminfo",
        "Node 0 MemTotal:        8126464 kB\nNode 0 MemFree:         6000000 kB\n"
        "Node 0 MemUsed:         2126464 kB",
    )
    for c in every:
        os.symlink(f"../../cpu/cpu{c}", root / node / "node0" / f"cpu{c}")
    (root / "bus/node/devices").mkdir(parents=True, exist_ok=True)
    os.symlink(f"../../../{node}/node0", root / "bus/node/devices/node0")


def cpuinfo(cores: int) -> str:
    """/proc/cpuinfo as an arm64 kernel writes it (no "model name" line on arm64)."""
    block = (
        "processor\t: {n}\nBogoMIPS\t: 108.00\nFeatures\t: {features}\n"
        "CPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x4\n"
        "CPU part\t: 0xd0b\nCPU revision\t: 1\n\n"
    )
    return "".join(block.format(n=n, features=FEATURES) for n in range(cores))


def main() -> int:
    sys_dir, cpuinfo_file = Path(sys.argv[1]), Path(sys.argv[2])
    cores = len(os.sched_getaffinity(0))
    if sys_dir.exists() and any(sys_dir.iterdir()):
        raise SystemExit(f"arm64_sysfs: {sys_dir} is not empty")
    sys_dir.mkdir(parents=True, exist_ok=True)
    write_sysfs(sys_dir, cores)
    cpuinfo_file.write_text(cpuinfo(cores))
    print(cores)
    return 0


if __name__ == "__main__":
    sys.exit(main())
