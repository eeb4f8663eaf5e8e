from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import model_factory

EXE = Path(sys.executable).with_name("edgeosteo")


def run(*args, env_extra=None):
    env = {**os.environ, **(env_extra or {})}
    command = [str(EXE)] if EXE.exists() else [sys.executable, "-m", "edgeosteo.cli"]
    return subprocess.run([*command, *args], capture_output=True, text=True, env=env, timeout=120)


def test_screen_prints_json_for_a_real_dicom(tmp_path, pydicom_data_dir):
    result = run(
        "--data-dir",
        str(tmp_path),
        "screen",
        str(pydicom_data_dir / "RG1_J2KR.dcm"),
        "--age",
        "70",
        "--sex",
        "female",
        "--weight",
        "50",
        "--json",
    )
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout.splitlines()[0])
    assert payload["image"]["modality"] == "CR"
    assert payload["quality"]["verdict"] in ("pass", "warn")
    assert "CompressedSamples" not in result.stdout  # the patient name stays on the box


def test_batch_over_a_folder_ends_with_a_tally(tmp_path, pydicom_data_dir):
    folder = tmp_path / "batch"
    folder.mkdir()
    for name in ("RG1_UNCR.dcm", "emri_small.dcm", "MR2_UNCR.dcm"):
        shutil.copy(pydicom_data_dir / name, folder / name)
    (folder / "notes.txt").write_text("not an image")
    result = run("--data-dir", str(tmp_path), "screen", str(folder))
    assert result.returncode == 0, result.stderr
    tally = result.stdout.strip().splitlines()[-1]
    assert tally.startswith("Tally:")
    assert "ok 1" in tally
    assert "refused: intake.multi_frame 1" in tally
    assert "refused: intake.not_an_image 1" in tally
    assert "refused: quality.wrong_modality 1" in tally


def test_models_verify_fails_on_a_modified_byte(tmp_path):
    models = model_factory.build_models_dir(tmp_path / "models")
    ok = run("--models-dir", str(models), "models", "verify")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "ok   test-clinical" in ok.stdout
    weights = models / "test-knee-image" / "model.onnx"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    bad = run("--models-dir", str(models), "models", "verify")
    assert bad.returncode == 1
    assert "FAIL test-knee-image onnx_fp32 model.onnx model.hash_mismatch" in bad.stdout


def test_info_reports_versions_backends_and_models(tmp_path):
    models = model_factory.build_models_dir(tmp_path / "models")
    result = run("--models-dir", str(models), "info", "--json")
    assert result.returncode == 0, result.stderr
    details = json.loads(result.stdout)
    assert details["physical_cores"] >= 1
    assert set(details["versions"]) >= {"onnxruntime", "openvino", "pydicom", "opencv"}
    assert details["models"]["test-clinical"]["verified"] is True
    assert details["models"]["test-knee-image"]["used_for_referral"] is False


def test_a_failing_command_says_why_in_both_languages_without_a_traceback(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[web]\nport = 'eighty'\n")
    result = run("--data-dir", str(tmp_path), "--config", str(bad), "info")
    assert result.returncode == 2
    assert "config.invalid" in result.stderr and "设置文件无效" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout

    unset = run("--data-dir", str(tmp_path / "box"), "sync")
    assert unset.returncode == 2
    assert "sync.not_configured" in unset.stderr and "区域中心" in unset.stderr
    assert "Traceback" not in unset.stderr + unset.stdout


def test_an_unexpected_fault_is_a_coded_message_not_a_traceback():
    """A defect inside any command ends in the coded bilingual message and exit 1; the
    command group is edgeosteo's own, the failing command a stand-in for a defect."""
    import click
    from click.testing import CliRunner

    from edgeosteo.cli import Commands

    @click.group(cls=Commands)
    def group() -> None:
        pass

    @group.command()
    def broken() -> None:
        raise KeyError("a defect")

    result = CliRunner().invoke(group, ["broken"])
    assert result.exit_code == 1
    assert "cli.unexpected" in result.output and "意外故障" in result.output
    assert "KeyError" in result.output and "Traceback" not in result.output
    assert not isinstance(result.exception, KeyError)
