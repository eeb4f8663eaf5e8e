"""The committed appliance boot report (tools/reports/boot.json, written by tools/boot-check)
holds every check the script makes, from a passing run, and says what a container does not
cover. No systemd-nspawn here."""

from __future__ import annotations

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_boot_report_is_a_passing_run_of_every_check_the_script_makes() -> None:
    script = (ROOT / "tools" / "boot-check").read_text()
    made = re.findall(r"^check (\w+)", script, re.M)
    assert "watchdog_restarts_hung_server" in made and "sync_timer_fired" in made
    report = json.loads((ROOT / "tools" / "reports" / "boot.json").read_text())
    assert list(report["checks"]) == made
    for name, check in report["checks"].items():
        assert check["ok"] is True, (name, check["detail"])
    assert report["ok"] is True and report["exit_status"] == 0
    assert "systemd-nspawn --boot" in report["what"]
    assert "hardware watchdog" in report["not_covered"]
