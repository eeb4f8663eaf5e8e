"""What `edgeosteo info` and the benchmarks call the CPU, from real /proc/cpuinfo layouts."""

from __future__ import annotations

import sys
from pathlib import Path

from edgeosteo.hardware import cpu_features, cpu_model, physical_cores

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))

import arm64_sysfs


def _arm_block(n: int, part: str, variant: str = "0x4", revision: str = "1") -> str:
    return (
        f"processor\t: {n}\nBogoMIPS\t: 48.00\nFeatures\t: fp asimd evtstrm crc32 asimddp\n"
        f"CPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: {variant}\n"
        f"CPU part\t: {part}\nCPU revision\t: {revision}\n\n"
    )


def test_a_raspberry_pi_5_is_named_by_its_board_and_cores() -> None:
    # a Raspberry Pi kernel appends the board's Revision, Serial and Model lines
    text = "".join(_arm_block(n, "0xd0b") for n in range(4))
    text += "Revision\t: d04170\nSerial\t\t: 0123456789abcdef\n"
    text += "Model\t\t: Raspberry Pi 5 Model B Rev 1.0\n"
    assert cpu_model(text) == "Raspberry Pi 5 Model B Rev 1.0 (4x Cortex-A76)"
    assert cpu_features(text) == ["asimd", "asimddp"]


def test_an_rk3588_names_both_clusters() -> None:
    text = "".join(_arm_block(n, "0xd05", "0x2", "0") for n in range(4))
    text += "".join(_arm_block(n, "0xd0b", "0x4", "0") for n in range(4, 8))
    assert cpu_model(text) == "4x Cortex-A55 + 4x Cortex-A76"


def test_an_unknown_arm_part_is_shown_by_number_and_x86_keeps_its_model_name() -> None:
    assert cpu_model(_arm_block(0, "0xfff")) == "1x implementer 0x41 part 0xfff"
    x86 = "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) N100\n"
    x86 += "physical id\t: 0\ncore id\t\t: 0\n"
    assert cpu_model(x86) == "Intel(R) N100"
    assert physical_cores(x86) == 1


def test_the_emulated_board_of_tools_arm64_check_is_a_cortex_a76() -> None:
    assert cpu_model(arm64_sysfs.cpuinfo(4)) == "4x Cortex-A76"
