"""firmware/: units pass systemd-analyze verify, scripts pass shellcheck, and provision
--root is idempotent and never regenerates a secret (real tools, real files)."""

from __future__ import annotations

import os
import shutil
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from edgeosteo.config import load_settings

REPO = Path(__file__).resolve().parents[1]
FIRMWARE = REPO / "firmware"
PROVISION = FIRMWARE / "provision"
UNITS = sorted((FIRMWARE / "systemd").glob("*.service")) + sorted(
    (FIRMWARE / "systemd").glob("*.timer")
)
ARGS = ("--subnet", "192.168.10.0/24", "--subnet", "fd00:10::/64", "--kiosk", "--site-id", "c7")
SECRETS = ("var/lib/edgeosteo/site-secret", "var/lib/edgeosteo/device-id")


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        if os.environ.get("CI"):
            pytest.fail(f"{name} is missing: tools/setup-tests installs it")
        pytest.skip(f"{name} is not installed (tools/setup-tests installs it)")
    return path


def shell_scripts() -> list[Path]:
    candidates = [REPO / "tools" / "setup-tests", REPO / ".ci" / "run"]
    candidates += [p for p in FIRMWARE.rglob("*") if p.is_file()]
    scripts = []
    for path in candidates:
        with path.open("rb") as handle:
            first = handle.readline()
        if first.startswith(b"#!") and (b"bash" in first or b"/sh" in first):
            scripts.append(path)
    return scripts


def test_every_script_passes_shellcheck():
    scripts = shell_scripts()
    assert PROVISION in scripts and FIRMWARE / "kiosk" / "edgeosteo-kiosk" in scripts
    result = subprocess.run(
        [tool("shellcheck"), "--severity=style", *map(str, scripts)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    for script in scripts:
        assert os.access(script, os.X_OK), f"{script} is not executable"


def test_every_unit_passes_systemd_analyze_verify(tmp_path):
    assert {u.name for u in UNITS} >= {
        "edgeosteo.service",
        "edgeosteo-sync.service",
        "edgeosteo-sync.timer",
        "edgeosteo-kiosk.service",
    }
    # verify checks that ExecStart= exists: point the installed paths at this checkout
    installed = {
        "/opt/edgeosteo/venv/bin/edgeosteo": str(Path(sys.executable).with_name("edgeosteo")),
        "/opt/edgeosteo/bin/edgeosteo-kiosk": str(FIRMWARE / "kiosk" / "edgeosteo-kiosk"),
    }
    copies = []
    for unit in UNITS:
        text = unit.read_text()
        for target, here in installed.items():
            text = text.replace(target, here)
        copy = tmp_path / unit.name
        copy.write_text(text)
        copies.append(str(copy))
    result = subprocess.run(
        [tool("systemd-analyze"), "verify", "--man=no", *copies],
        capture_output=True,
        text=True,
        env={**os.environ, "SYSTEMD_LOG_LEVEL": "warning"},
    )
    problems = [
        line for line in (result.stdout + result.stderr).splitlines() if "edgeosteo" in line
    ]
    assert result.returncode == 0 and not problems, result.stdout + result.stderr


def test_server_unit_is_a_hardened_notify_service_with_a_watchdog():
    text = (FIRMWARE / "systemd" / "edgeosteo.service").read_text()
    for line in (
        "Type=notify",
        "WatchdogSec=60",
        "Restart=on-failure",
        "ProtectSystem=strict",
        "PrivateTmp=yes",
        "NoNewPrivileges=yes",
        "ReadWritePaths=/var/lib/edgeosteo",
    ):
        assert line in text.splitlines(), line
    assert [x for x in text.splitlines() if x.startswith("ReadWritePaths=")] == [
        "ReadWritePaths=/var/lib/edgeosteo"
    ]
    sync = (FIRMWARE / "systemd" / "edgeosteo-sync.service").read_text()
    assert "edgeosteo --data-dir /var/lib/edgeosteo sync" in sync


def provision(root: Path, *extra: str) -> subprocess.CompletedProcess:
    result = subprocess.run(
        ["bash", str(PROVISION), "--root", str(root), *ARGS, *extra],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def snapshot(root: Path) -> dict[str, tuple]:
    tree = {}
    for path in sorted(root.rglob("*")):
        name = path.relative_to(root).as_posix()
        mode = stat.S_IMODE(path.lstat().st_mode)
        if path.is_symlink():
            tree[name] = ("link", os.readlink(path))
        elif path.is_dir():
            tree[name] = ("dir", mode)
        else:
            tree[name] = ("file", mode, path.read_bytes())
    return tree


def test_provision_twice_gives_the_same_tree_and_keeps_the_secret(tmp_path):
    root = tmp_path / "image"
    provision(root)
    first = snapshot(root)
    second_run = provision(root)
    assert snapshot(root) == first
    assert "kept /var/lib/edgeosteo/site-secret" in second_run.stdout
    assert "wrote" not in second_run.stdout and "copied" not in second_run.stdout

    secret = root / "var/lib/edgeosteo/site-secret"
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert len(secret.read_text().strip()) == 64
    for expected in (
        "etc/systemd/system/edgeosteo.service",
        "etc/systemd/system/edgeosteo-sync.timer",
        "etc/systemd/system/edgeosteo-kiosk.service",
        "etc/systemd/journald.conf.d/edgeosteo.conf",
        "etc/sysusers.d/edgeosteo.conf",
        "etc/nftables.d/edgeosteo.nft",
        "opt/edgeosteo/models/knee-clinical/manifest.json",
    ):
        assert (root / expected).is_file(), expected
    wants = root / "etc/systemd/system/multi-user.target.wants/edgeosteo.service"
    assert os.readlink(wants) == "/etc/systemd/system/edgeosteo.service"
    timer = root / "etc/systemd/system/timers.target.wants/edgeosteo-sync.timer"
    assert os.readlink(timer) == "/etc/systemd/system/edgeosteo-sync.timer"
    assert "u edgeosteo " in (root / "etc/sysusers.d/edgeosteo.conf").read_text()


def test_two_fresh_trees_differ_only_in_identity_and_secret(tmp_path):
    provision(tmp_path / "a")
    provision(tmp_path / "b")
    a, b = snapshot(tmp_path / "a"), snapshot(tmp_path / "b")
    assert a.keys() == b.keys()
    differing = {name for name in a if a[name] != b[name]}
    # the site config carries the device id
    assert differing == {*SECRETS, "var/lib/edgeosteo/edgeosteo.toml"}


def test_an_existing_secret_and_config_are_never_replaced(tmp_path):
    root = tmp_path / "image"
    data = root / "var/lib/edgeosteo"
    data.mkdir(parents=True)
    (data / "site-secret").write_text("the-clinic's-own-secret\n")
    (data / "site-secret").chmod(0o600)
    (data / "edgeosteo.toml").write_text('language = "en"\n')
    provision(root)
    provision(root, "--port", "9090")
    assert (data / "site-secret").read_text() == "the-clinic's-own-secret\n"
    assert (data / "edgeosteo.toml").read_text() == 'language = "en"\n'
    # the firewall follows the new port; the config is the site's own
    assert "9090" in (root / "etc/nftables.d/edgeosteo.nft").read_text()


def test_provisioned_config_loads_and_firewall_parses(tmp_path):
    root = tmp_path / "image"
    provision(root, "--hub", "https://hub.example/api")
    settings = load_settings(data_dir=root / "var/lib/edgeosteo", environ={})
    assert settings.web.host == "0.0.0.0" and settings.web.port == 8080
    assert settings.models_dir == Path("/opt/edgeosteo/models")
    assert settings.runtime.backend in ("onnxruntime", "openvino")  # "auto", resolved
    assert settings.sync.endpoint == "https://hub.example/api"
    assert settings.receiver.host == "0.0.0.0" and settings.receiver.port == 11112
    device_id = (root / "var/lib/edgeosteo/device-id").read_text().strip()
    assert getattr(settings.sync, "device_id", device_id) == device_id
    ruleset = root / "etc/nftables.d/edgeosteo.nft"
    text = ruleset.read_text()
    assert "192.168.10.0/24" in text and "fd00:10::/64" in text
    assert "tcp dport { 8080, 11112 } drop" in text
    assert 'include "/etc/nftables.d/*.nft"' in (root / "etc/nftables.conf").read_text()
    nft = shutil.which("nft") or shutil.which("nft", path="/usr/sbin")
    if nft:
        check = subprocess.run([nft, "-c", "-f", str(ruleset)], capture_output=True, text=True)
        if "Operation not permitted" not in check.stderr:
            assert check.returncode == 0, check.stderr


def test_dry_run_changes_nothing(tmp_path):
    root = tmp_path / "image"
    result = subprocess.run(
        ["bash", str(PROVISION), "--root", str(root), "--dry-run", *ARGS],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "would write /etc/systemd/system/edgeosteo.service" in result.stdout
    assert "would create /var/lib/edgeosteo/site-secret" in result.stdout
    assert not root.exists()


def test_provision_refuses_a_malformed_subnet(tmp_path):
    result = subprocess.run(
        ["bash", str(PROVISION), "--root", str(tmp_path), "--subnet", "clinic; rm -rf /"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0 and "not an IPv4 or IPv6 network" in result.stderr


@pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("systemd-tmpfiles") is None,
    reason="needs root and systemd-tmpfiles to create the accounts' files in a tree",
)
def test_provisioned_accounts_and_data_directory_apply(tmp_path):
    root = tmp_path / "image"
    provision(root)
    for tool in (["systemd-sysusers"], ["systemd-tmpfiles", "--create"]):
        done = subprocess.run(
            [tool[0], f"--root={root}", *tool[1:], "edgeosteo.conf"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
    account = next(
        line.split(":")
        for line in (root / "etc/passwd").read_text().splitlines()
        if line.startswith("edgeosteo:")
    )
    home = root / account[5].lstrip("/")
    assert account[5] == "/var/lib/edgeosteo" and account[6] == "/usr/sbin/nologin"
    assert home.stat().st_uid == int(account[2])
    # OpenVINO reads $HOME/intel/openvino_telemetry: "0" declines its usage telemetry
    assert (home / "intel" / "openvino_telemetry").read_text() == "0"
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "TF_BUILD", "JENKINS_URL")}
    subprocess.run(
        [sys.executable, "-c", "import openvino"], env={**env, "HOME": str(home)}, check=True
    )
    assert not (home / "intel" / "openvino_ga_cid").exists()


def test_the_kiosk_browser_speaks_the_clinics_language(tmp_path):
    """Provisioning installs Chromium's locale data and names the kiosk's language; the kiosk
    starts Chromium in it (its own date pickers and dialogs are then Chinese)."""
    provision(tmp_path / "root")
    defaults = (tmp_path / "root/etc/default/edgeosteo-kiosk").read_text()
    assert "EDGEOSTEO_KIOSK_LANG=zh-CN" in defaults.splitlines()
    packages = next(line for line in PROVISION.read_text().splitlines() if "packages+=(" in line)
    assert "chromium-l10n" in packages.split() and "fonts-noto-cjk" in packages
    # the kiosk script as systemd runs it, with cage and chromium that only say their arguments
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("cage", "chromium"):
        stub = bin_dir / name
        stub.write_text('#!/bin/sh\necho "$0 LANGUAGE=$LANGUAGE $*"\n')
        stub.chmod(0o755)
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        environment = {
            "PATH": f"{bin_dir}:/usr/bin:/bin",
            "EDGEOSTEO_KIOSK_URL": f"http://127.0.0.1:{port}/",
            "EDGEOSTEO_KIOSK_LANG": "zh-CN",
        }
        run = subprocess.run(
            ["bash", str(FIRMWARE / "kiosk" / "edgeosteo-kiosk")],
            env=environment,
            capture_output=True,
            text=True,
            timeout=30,
        )
    assert run.returncode == 0, run.stderr
    assert "LANGUAGE=zh_CN" in run.stdout and "--lang=zh-CN" in run.stdout.split()
