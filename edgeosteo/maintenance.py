"""Backup, restore and the support bundle of a station's data directory.

A backup is one ``.tar.gz``: a consistent copy of the SQLite store taken with SQLite's
online backup API (safe while the server runs), the case images, and the top-level files
of the data directory (site config, device id, secrets). It holds patient data and secrets
and is written 0600. ``backup.json`` inside lists every member with its sha256 and
describes the store, so a restore can check integrity and refuse to replace a store that
holds newer cases than the backup.

A support bundle is what a remote helper may see: versions, model hashes, the effective
configuration with secrets redacted, store counts and recent journal lines. It never holds
a secret or a patient identifier: every member is scrubbed, then checked again before the
bundle is written, and bundling fails rather than leak.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import re
import shutil
import sqlite3
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from edgeosteo import __version__
from edgeosteo.config import Settings
from edgeosteo.errors import EdgeOsteoError
from edgeosteo.models import ModelRegistry, sha256_of
from edgeosteo.store import DATABASE_NAME, MIGRATIONS

BACKUP_FORMAT = 1
META_NAME = "backup.json"
IMAGES = "images"
# top-level data-directory entries that are rebuilt, never carried
_NOT_CARRIED = re.compile(
    r"^(edgeosteo\.sqlite3(-wal|-shm|-journal)?|edgeosteo\.lock|.*\.part|\.restore-.*)$"
)
# files in the data directory whose contents are secrets (sync names from SyncSettings)
SECRET_FILES = ("web-secret-key", "site-secret", "sync-token")
SECRET_KEY_PATTERN = re.compile(r"(secret|token|password|passwd|api_?key)", re.IGNORECASE)
REDACTED = "<redacted>"
JOURNAL_UNITS = (
    "edgeosteo.service",
    "edgeosteo-sync.service",
    "edgeosteo-kiosk.service",
)


class MaintenanceError(EdgeOsteoError):
    """Backup, restore or bundle refused; ``detail`` says why in plain English."""

    def __init__(self, detail: str) -> None:
        super().__init__("maintenance.refused", detail)


def _utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _stamp() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")


def store_summary(database: Path) -> dict[str, Any]:
    """Counts that say how new a store is, without a single identifier."""
    if not database.is_file():
        return {"exists": False, "cases": 0, "newest_case_at": None, "schema_version": 0}
    connection = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=30)
    try:
        version = int(connection.execute("PRAGMA user_version").fetchone()[0])
        tables = {r[0] for r in connection.execute("SELECT name FROM sqlite_master")}
        cases, newest = (0, None)
        if "cases" in tables:
            cases, newest = connection.execute(
                "SELECT count(*), max(created_at) FROM cases"
            ).fetchone()
        outbox = {}
        if "outbox" in tables:
            outbox = dict(
                connection.execute("SELECT state, count(*) FROM outbox GROUP BY state").fetchall()
            )
    finally:
        connection.close()
    return {
        "exists": True,
        "cases": int(cases),
        "newest_case_at": newest,
        "schema_version": version,
        "outbox": outbox,
    }


def _copy_database(source: Path, target: Path) -> None:
    src = sqlite3.connect(source, timeout=30)
    dst = sqlite3.connect(target)
    try:
        src.backup(dst)
    finally:
        dst.close()
        src.close()


def _carried_files(data_dir: Path) -> list[Path]:
    files = []
    for path in sorted(data_dir.iterdir()):
        if path.is_file() and not path.is_symlink() and not _NOT_CARRIED.match(path.name):
            files.append(path)
    images = data_dir / IMAGES
    if images.is_dir():
        files.extend(
            p
            for p in sorted(images.rglob("*"))
            if p.is_file() and not p.is_symlink() and not p.name.endswith(".part")
        )
    return files


def backup(data_dir: Path, destination: Path) -> Path:
    """Write a backup archive; ``destination`` is a ``.tar.gz`` path or else a directory."""
    database = data_dir / DATABASE_NAME
    if not database.is_file():
        raise MaintenanceError(f"no store at {database}")
    if destination.is_dir() or not destination.name.endswith(".tar.gz"):
        destination = destination / f"edgeosteo-backup-{_stamp()}.tar.gz"
    destination.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=destination.parent, prefix=".backup-") as work:
        copy = Path(work) / DATABASE_NAME
        # the database first: images written afterwards are extra, never missing
        _copy_database(database, copy)
        members: list[tuple[str, Path]] = [(DATABASE_NAME, copy)]
        members += [(p.relative_to(data_dir).as_posix(), p) for p in _carried_files(data_dir)]
        meta = {
            "format": BACKUP_FORMAT,
            "edgeosteo": __version__,
            "created_at": _utc_now(),
            "store": store_summary(copy),
            "files": {name: {"sha256": sha256_of(path)} for name, path in members},
        }
        partial = destination.with_name(destination.name + ".part")
        descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "wb") as raw, tarfile.open(fileobj=raw, mode="w:gz") as tar:
            _add_bytes(tar, META_NAME, json.dumps(meta, indent=1).encode(), 0o600)
            for name, path in members:
                info = tar.gettarinfo(str(path), arcname=name)
                info.uid = info.gid = 0
                info.uname = info.gname = ""
                with path.open("rb") as handle:
                    tar.addfile(info, handle)
            raw.flush()
            os.fsync(raw.fileno())
        partial.replace(destination)
    return destination


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes, mode: int = 0o644) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = mode
    info.mtime = int(time.time())
    tar.addfile(info, io.BytesIO(data))


def read_backup_meta(archive: Path) -> dict[str, Any]:
    try:
        with tarfile.open(archive, "r:gz") as tar:
            member = tar.extractfile(META_NAME)
            if member is None:
                raise KeyError(META_NAME)
            return json.loads(member.read())
    except (OSError, KeyError, tarfile.TarError, ValueError) as exc:
        raise MaintenanceError(f"{archive} is not an edgeosteo backup: {exc}") from exc


def _is_newer(current: Mapping[str, Any], backup_store: Mapping[str, Any]) -> bool:
    """Whether the store on the box holds anything the backup does not."""
    if not current.get("cases"):
        return False
    if current["cases"] > backup_store.get("cases", 0):
        return True
    ours, theirs = current.get("newest_case_at"), backup_store.get("newest_case_at")
    return bool(ours) and (not theirs or str(ours) > str(theirs))


def restore(archive: Path, data_dir: Path, force: bool = False) -> dict[str, Any]:
    """Restore a backup into ``data_dir``; returns the backup's description."""
    meta = read_backup_meta(archive)
    if meta.get("format") != BACKUP_FORMAT:
        raise MaintenanceError(f"backup format {meta.get('format')!r} is not {BACKUP_FORMAT}")
    backup_store = meta.get("store") or {}
    if int(backup_store.get("schema_version", 0)) > len(MIGRATIONS):
        raise MaintenanceError(
            f"the backup's store schema {backup_store.get('schema_version')} is newer than "
            f"this edgeosteo ({__version__}) understands; update edgeosteo first"
        )
    current = store_summary(data_dir / DATABASE_NAME)
    if _is_newer(current, backup_store) and not force:
        raise MaintenanceError(
            f"the store here is newer than the backup ({current['cases']} cases, newest "
            f"{current['newest_case_at']}; backup: {backup_store.get('cases')} cases, newest "
            f"{backup_store.get('newest_case_at')}); use --force to replace it anyway"
        )
    data_dir.mkdir(parents=True, exist_ok=True)
    expected = meta.get("files") or {}
    with tempfile.TemporaryDirectory(dir=data_dir, prefix=".restore-") as work:
        staging = Path(work)
        _extract_checked(archive, staging, expected)
        _copy_database(staging / DATABASE_NAME, data_dir / DATABASE_NAME)
        for name in sorted(expected):
            if name == DATABASE_NAME:
                continue
            source = staging / name
            target = data_dir / name
            target.parent.mkdir(parents=True, exist_ok=True)
            partial = target.with_name(target.name + ".part")
            shutil.copy2(source, partial)
            partial.replace(target)
    return meta


def _extract_checked(archive: Path, staging: Path, expected: Mapping[str, Any]) -> None:
    seen = set()
    with tarfile.open(archive, "r:gz") as tar:
        for member in tar:
            if member.name == META_NAME:
                continue
            parts = Path(member.name).parts
            if (
                not member.isfile()
                or member.name.startswith("/")
                or ".." in parts
                or member.name not in expected
            ):
                raise MaintenanceError(f"unexpected member {member.name!r} in the backup")
            target = staging / member.name
            target.parent.mkdir(parents=True, exist_ok=True)
            source = tar.extractfile(member)
            if source is None:
                raise MaintenanceError(f"unreadable member {member.name!r}")
            with target.open("wb") as handle:
                shutil.copyfileobj(source, handle)
            os.chmod(target, member.mode & 0o777)
            if sha256_of(target) != expected[member.name]["sha256"]:
                raise MaintenanceError(f"{member.name} does not match its sha256: damaged backup")
            seen.add(member.name)
    missing = set(expected) - seen
    if missing or DATABASE_NAME not in seen:
        raise MaintenanceError(f"backup incomplete, missing {sorted(missing) or [DATABASE_NAME]}")


# --- support bundle ------------------------------------------------------------------


def sensitive_strings(settings: Settings, environ: Mapping[str, str]) -> set[str]:
    """Every value that must never leave the box in a bundle: secrets and identifiers."""
    found: set[str] = set()
    for name in _secret_file_names(settings):
        path = settings.data_dir / name
        if path.is_file():
            value = path.read_text(encoding="utf-8", errors="replace").strip()
            if value:
                found.add(value)
    for key, value in environ.items():
        if key.startswith("EDGEOSTEO_") and SECRET_KEY_PATTERN.search(key) and value:
            found.add(value)
    database = settings.data_dir / DATABASE_NAME
    if database.is_file():
        connection = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=30)
        try:
            for identity, local_id, original in connection.execute(
                "SELECT identity_json, local_patient_id, original_name FROM cases"
            ):
                found.update(_strings(json.loads(identity or "{}")))
                found.update(s for s in (local_id, original) if s)
        finally:
            connection.close()
    # a sex code or an empty field is not an identifier, and scrubbing it would garble text
    return {s for s in found if len(s) >= 3}


def _secret_file_names(settings: Settings) -> list[str]:
    names = list(SECRET_FILES)
    sync = settings.sync
    for attribute in ("token_file", "site_secret_file"):
        value = getattr(sync, attribute, "")
        if value:
            names.append(value)
    return names


def _strings(value: Any) -> Iterable[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _strings(item)


# the first start prints the admin's one-time password, which the journal keeps
PASSWORD_IN_TEXT = re.compile(r"(password[\s:=]*(?:is\s+)?)(?=[^\s:=<])(\S+)", re.IGNORECASE)


def scrub(text: str, sensitive: Iterable[str]) -> str:
    for value in sorted(sensitive, key=len, reverse=True):
        text = text.replace(value, REDACTED)
    return PASSWORD_IN_TEXT.sub(lambda m: m.group(1) + REDACTED, text)


def redacted_settings(settings: Settings) -> dict[str, Any]:
    def clean(key: str, value: Any) -> Any:
        if dataclasses.is_dataclass(value):
            value = dataclasses.asdict(value)
        if isinstance(value, Mapping):
            return {k: clean(k, v) for k, v in value.items()}
        if isinstance(value, Path):
            return str(value)
        if isinstance(value, tuple):
            return list(value)
        if isinstance(value, str) and key.endswith("_file"):
            return value  # the name of a secret's file, not the secret
        if isinstance(value, str) and value and SECRET_KEY_PATTERN.search(key):
            return REDACTED
        if isinstance(value, str) and "://" in value:
            return re.sub(r"://[^/@]*@", f"://{REDACTED}@", value)  # credentials in a URL
        return value

    return {f.name: clean(f.name, getattr(settings, f.name)) for f in dataclasses.fields(settings)}


def _command_output(command: list[str], timeout_s: float = 30.0) -> str:
    if shutil.which(command[0]) is None:
        return f"({command[0]} not available on this system)\n"
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"({' '.join(command)} failed: {exc})\n"
    return done.stdout + (f"\n(stderr) {done.stderr}" if done.stderr.strip() else "")


def model_hashes(settings: Settings) -> dict[str, Any]:
    registry = ModelRegistry(settings.models_dir)
    out: dict[str, Any] = {
        "models_dir": str(settings.models_dir),
        "problems": {k: f"{v.code}: {v.detail}" for k, v in registry.problems.items()},
    }
    for manifest in registry:
        out[manifest.id] = {
            "version": manifest.version,
            "files": [
                {
                    "role": f.role,
                    "file": f.path.name,
                    "expected_sha256": f.sha256,
                    "actual_sha256": sha256_of(f.path) if f.path.is_file() else None,
                }
                for f in manifest.files
            ],
        }
    return out


def support_bundle(
    settings: Settings,
    destination: Path,
    system_info: Mapping[str, Any],
    selftest: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Path:
    """Write the support bundle; ``destination`` is a ``.tar.gz`` path or else a directory."""
    env = os.environ if environ is None else environ
    if destination.is_dir() or not destination.name.endswith(".tar.gz"):
        destination = destination / f"edgeosteo-support-{_stamp()}.tar.gz"
    sensitive = sensitive_strings(settings, env)
    lines = settings.appliance.support_journal_lines
    members: dict[str, str] = {
        "README.txt": (
            "edgeosteo support bundle. Contains versions, model hashes, the effective settings\n"
            "with secrets redacted, store counts, disk space and recent journal lines.\n"
            "Contains no patient data, no images and no secrets.\n"
        ),
        "versions.json": json.dumps(system_info, indent=1, default=str, ensure_ascii=False),
        "models.json": json.dumps(model_hashes(settings), indent=1, ensure_ascii=False),
        "settings.json": json.dumps(redacted_settings(settings), indent=1, ensure_ascii=False),
        "store.json": json.dumps(store_summary(settings.data_dir / DATABASE_NAME), indent=1),
        "disk.json": json.dumps(shutil.disk_usage(settings.data_dir)._asdict(), indent=1),
    }
    if selftest is not None:
        members["selftest.json"] = json.dumps(selftest, indent=1, ensure_ascii=False)
    for unit in JOURNAL_UNITS:
        members[f"journal/{unit}.txt"] = _command_output(
            ["journalctl", "--no-pager", "-o", "short-iso", "-n", str(lines), "-u", unit]
        )
    properties = "Id,ActiveState,SubState,Result,NRestarts"
    units = [*JOURNAL_UNITS, "edgeosteo-sync.timer"]
    members["systemd.txt"] = _command_output(
        ["systemctl", "show", "--no-pager", "-p", properties, *units]
    )
    encoded = {name: scrub(text, sensitive).encode("utf-8") for name, text in members.items()}
    for name, data in encoded.items():
        for value in sensitive:
            if value.encode("utf-8") in data:
                raise MaintenanceError(f"refusing to write the bundle: {name} holds sensitive data")
    destination.parent.mkdir(parents=True, exist_ok=True)
    partial = destination.with_name(destination.name + ".part")
    with tarfile.open(partial, "w:gz") as tar:
        for name, data in encoded.items():
            _add_bytes(tar, name, data)
    partial.replace(destination)
    return destination
