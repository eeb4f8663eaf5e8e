"""The ``edgeosteo`` command line. Every screening goes through Screener.screen()."""

from __future__ import annotations

import json
import logging
import platform
import sys
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

import click

from edgeosteo import __version__
from edgeosteo.config import Settings, load_settings
from edgeosteo.errors import CommandError, EdgeOsteoError
from edgeosteo.hardware import cpu_features, cpu_model, physical_cores
from edgeosteo.messages import text
from edgeosteo.models import ModelRegistry, verify_files

if TYPE_CHECKING:
    from edgeosteo.app import Box

logger = logging.getLogger(__name__)


def _settings(ctx: click.Context) -> Settings:
    return ctx.obj["settings"]


def error_lines(error: EdgeOsteoError) -> str:
    """A failure as a technician reads it: the stable code, then both languages."""
    detail = f" ({error.detail})" if error.detail else ""
    return f"Error: {error.code}: {error.message('en')}{detail}\n错误：{error.message('zh_CN')}"


class Commands(click.Group):
    """Every command's failure ends in a coded message in English and Chinese and a
    non-zero exit, never a Python traceback."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except EdgeOsteoError as exc:
            click.echo(error_lines(exc), err=True)
            ctx.exit(2)
        except Exception as exc:  # a defect: say so plainly, keep the traceback in the log
            logger.debug("command failed", exc_info=True)
            failure = CommandError("cli.unexpected", f"{type(exc).__name__}: {exc}")
            click.echo(error_lines(failure), err=True)
            ctx.exit(1)


@click.group(cls=Commands)
@click.version_option(__version__, prog_name="edgeosteo")
@click.option(
    "--data-dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Where cases, settings and caches live.",
)
@click.option(
    "--models-dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Directory of installed models (default: the shipped models).",
)
@click.option(
    "--config",
    "config_file",
    type=click.Path(path_type=Path),
    default=None,
    help="A TOML settings file.",
)
@click.pass_context
def main(
    ctx: click.Context, data_dir: Path | None, models_dir: Path | None, config_file: Path | None
) -> None:
    """edgeosteo: offline osteoporosis screening from routine radiographs."""
    # pydicom logs every odd-but-readable header element; the result already says what
    # matters, so only its errors reach the console
    logging.getLogger("pydicom").setLevel(logging.ERROR)
    overrides = {"models_dir": str(models_dir)} if models_dir else {}
    ctx.obj = {"settings": load_settings(data_dir=data_dir, config_file=config_file, **overrides)}


def _expand(paths: tuple[Path, ...]) -> list[Path]:
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files.extend(sorted(p for p in path.rglob("*") if p.is_file()))
        else:
            files.append(path)
    return files


def _summary_lines(result: dict, language: str) -> list[str]:
    lines: list[str] = []
    error = result.get("intake_error")
    if error:
        lines.append(f"  refused  {error['code']}: {text(error['code'], language)}")
    quality = result.get("quality")
    if quality:
        lines.append(f"  quality  {quality['verdict']}")
        for code in quality["codes"]:
            lines.append(f"           {code}: {text(code, language)}")
    findings = result["findings"]
    for finding in findings["results"]:
        parts = [f"{finding['model_id']} {finding['model_version']}", f"[{finding['status']}]"]
        if finding.get("p_low_bone_mass") is not None:
            parts.append(f"P(T<=-1)={finding['p_low_bone_mass']:.2f}")
        if finding.get("p_osteoporosis") is not None:
            parts.append(f"P(T<=-2.5)={finding['p_osteoporosis']:.2f}")
        if finding.get("t_score") is not None:
            parts.append(f"T~{finding['t_score']:.1f}")
        lines.append("  model    " + " ".join(parts))
    for missing in findings["unavailable"]:
        lines.append(f"  not run  {missing['code']}: {text(missing['code'], language)}")
    for m in result.get("measurements") or ():
        lines.extend(_measurement_lines(m, language))
    clinical = result.get("clinical")
    if clinical:
        for instrument in clinical.get("instruments", []):
            score = instrument.get("score")
            band = instrument.get("band")
            if score is not None:
                lines.append(f"  clinical {instrument.get('name')}: {score} ({band})")
    referral = result.get("referral")
    if referral:
        lines.append(f"  REFERRAL {referral.get('category', '').upper()}")
        for reason in referral.get("reasons", []):
            lines.append(f"           {reason.get('code')}: {reason.get('evidence', '')}")
    return lines


@main.command()
@click.argument("files", nargs=-1, type=click.Path(path_type=Path))
@click.option("--age", type=float, help="Age in years.")
@click.option("--sex", type=click.Choice(["female", "male"]))
@click.option("--weight", type=float, help="Weight in kg.")
@click.option("--height", type=float, help="Height in metres.")
@click.option(
    "--prior-fracture/--no-prior-fracture", default=None, help="Fragility fracture after age 40."
)
@click.option(
    "--glucocorticoids/--no-glucocorticoids",
    default=None,
    help="Oral glucocorticoids for 3 months or more.",
)
@click.option(
    "--body-part",
    help="Body part shown (e.g. KNEE); by default the file's own header says. A choice the "
    "header contradicts runs no image model unless --body-part-confirmed.",
)
@click.option(
    "--body-part-confirmed",
    is_flag=True,
    help="The --body-part given is right even where the image's header says otherwise.",
)
@click.option(
    "--photo",
    is_flag=True,
    help="The files are phone photos of printed films: find, rectify and judge the film.",
)
@click.option(
    "--film-corners",
    help="With --photo: the film's four corners in the photo's pixels, as JSON, e.g. "
    '"[[120,80],[900,95],[910,1200],[100,1190]]" (otherwise the film is found automatically).',
)
@click.option(
    "--measure",
    "measure_method",
    help="A measurement method to run with --points (mci, cti, mcw, vertebrae); see "
    "`edgeosteo measure`.",
)
@click.option("--points", help="With --measure: the taps as JSON, in the image's pixels.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (one object per file).")
@click.option("--lang", type=click.Choice(["en", "zh_CN"]), default="en")
@click.pass_context
def screen(
    ctx: click.Context,
    files: tuple[Path, ...],
    age,
    sex,
    weight,
    height,
    prior_fracture,
    glucocorticoids,
    body_part,
    body_part_confirmed: bool,
    photo: bool,
    film_corners: str | None,
    measure_method: str | None,
    points: str | None,
    as_json: bool,
    lang: str,
) -> None:
    """Screen radiographs (files or folders) and print the result."""
    from edgeosteo.errors import IntakeError
    from edgeosteo.intake.photo import FilmCorners
    from edgeosteo.screening import Screener

    requests = _measurement_requests(measure_method, points, lang)
    corners = None
    if film_corners:
        if not photo:
            raise click.UsageError("--film-corners needs --photo")
        try:
            corners = FilmCorners.from_json(film_corners)
        except IntakeError as exc:
            raise click.BadParameter(text(exc.code, lang), param_hint="--film-corners") from exc

    patient = {
        key: value
        for key, value in {
            "age_years": age,
            "sex": sex,
            "weight_kg": weight,
            "height_m": height,
            "prior_fragility_fracture": prior_fracture,
            "glucocorticoids_3_months": glucocorticoids,
        }.items()
        if value is not None
    }
    screener = Screener(_settings(ctx))
    paths = _expand(files)
    tally: Counter[str] = Counter()
    results = []
    show_progress = len(paths) > 1 and not as_json
    sources: list[Path | None] = list(paths) if paths else [None]
    with (
        click.progressbar(sources, label="Screening", file=sys.stderr, show_pos=True)
        if show_progress
        else _plain(sources) as bar
    ):
        for path in bar:
            result = screener.screen(
                path,
                patient,
                body_part,
                capture="photo" if photo else "digital",
                film_corners=corners,
                body_part_confirmed=body_part_confirmed,
                measurements=requests,
            ).to_dict()
            error = result.get("intake_error")
            quality = result.get("quality")
            if error:
                tally[f"refused: {error['code']}"] += 1
            elif quality and quality["verdict"] == "fail":
                first = next(g["code"] for g in quality["gates"] if g["verdict"] == "fail")
                tally[f"refused: {first}"] += 1
            else:
                tally["ok"] += 1
            results.append((path, result))
    if as_json:
        for _, result in results:
            click.echo(json.dumps(result, ensure_ascii=False))
        return
    for path, result in results:
        click.echo(str(path) if path else "(no image: clinical assessment only)")
        for line in _summary_lines(result, lang):
            click.echo(line)
    if len(results) > 1:
        click.echo("Tally: " + ", ".join(f"{k} {v}" for k, v in sorted(tally.items())))


def _measurement_requests(method: str | None, points: str | None, lang: str) -> tuple:
    from edgeosteo.errors import RequestError
    from edgeosteo.measurement import MeasurementRequest

    if not method:
        if points:
            raise click.UsageError("--points needs --measure")
        return ()
    try:
        return (MeasurementRequest.parse(method, points),)
    except RequestError as exc:
        raise click.BadParameter(
            f"{text(exc.code, lang)} ({exc.detail})", param_hint="--points"
        ) from exc


def _measurement_lines(m: dict, language: str) -> list[str]:
    if m.get("status") == "refused":
        detail = f" ({m['detail']})" if m.get("detail") else ""
        return [
            f"  measure  {m['method']} refused {m['code']}: {text(m['code'], language)}{detail}"
        ]
    cutoff = m.get("cutoff") or {}
    unit = "" if m["unit"] in ("ratio", "grade") else f" {m['unit']}"
    lines = [
        f"  measure  {m['method']} {m['method_version']}: {m['value']:.3g}{unit} "
        f"band {m.get('band')} ({cutoff.get('rule', '')}; {cutoff.get('citation', '')})"
    ]
    for vertebra in (m.get("details") or {}).get("vertebrae", []):
        lines.append(
            f"           {vertebra.get('level')}: grade {vertebra.get('grade')} "
            f"{vertebra.get('type') or ''}"
        )
    return lines


@main.command()
@click.argument("file", type=click.Path(path_type=Path, exists=True, dir_okay=True))
@click.option(
    "--method", "method", required=True, help="mci, cti, mcw, vertebrae, or ct-l1 (a folder)."
)
@click.option(
    "--points",
    required=True,
    help="The taps as JSON in the image's pixels: a list of [x, y], or an object with "
    '"points" and the method\'s options, e.g. \'{"first_level": "T12", "points": [...]}\'; '
    'for ct-l1 on a CT series folder, \'{"level": "L1", "sagittal": [x, y]}\' on the '
    "sagittal reformat (x: its column, y: its row, the slice from the top).",
)
@click.option("--body-part", help="Body part shown; by default the file's header says.")
@click.option("--body-part-confirmed", is_flag=True, help="The --body-part given is right.")
@click.option("--photo", is_flag=True, help="The file is a phone photo of a printed film.")
@click.option("--json", "as_json", is_flag=True, help="Print the measurement as JSON.")
@click.option("--lang", type=click.Choice(["en", "zh_CN"]), default="en")
@click.pass_context
def measure(
    ctx: click.Context,
    file: Path,
    method: str,
    points: str,
    body_part: str | None,
    body_part_confirmed: bool,
    photo: bool,
    as_json: bool,
    lang: str,
) -> None:
    """Measure one radiograph with a method and the user's taps (the same stage a
    screening runs), or, with --method ct-l1, the CT series in the folder FILE. Exits 1
    when the measurement is refused, with the reason."""
    from edgeosteo.screening import Screener

    if method.strip().lower() == "ct-l1" or file.is_dir():
        _measure_series(ctx, file, method, points, as_json, lang)
        return
    (request,) = _measurement_requests(method, points, lang)
    screener = Screener(_settings(ctx))
    capture = "photo" if photo else "digital"
    intake = screener.read(file, capture)
    quality = screener.check_quality(intake)
    choice = screener.choose_body_part(intake, body_part, body_part_confirmed)
    if intake.error:
        result: dict = {
            "status": "refused",
            "method": request.method,
            "code": intake.error["code"],
            "message_en": intake.error["message_en"],
            "message_zh_CN": intake.error["message_zh_CN"],
            "detail": intake.error.get("detail"),
        }
    else:
        result = screener.measure(intake, quality, choice, request).to_dict()
    if as_json:
        click.echo(json.dumps(result, ensure_ascii=False))
    else:
        click.echo(str(file))
        for line in _measurement_lines(result, lang):
            click.echo(line)
    if result["status"] == "refused":
        ctx.exit(1)


def _measure_series(
    ctx: click.Context, folder: Path, method: str, points: str, as_json: bool, lang: str
) -> None:
    from edgeosteo.errors import RequestError
    from edgeosteo.measurement import MeasurementError
    from edgeosteo.methods.ct_l1 import parse_request
    from edgeosteo.screening import Screener

    if method.strip().lower() != "ct-l1":
        raise click.BadParameter(
            f"a folder is read by --method ct-l1 only; give one image file for {method}",
            param_hint="FILE",
        )
    try:
        request = parse_request(points)
    except RequestError as exc:
        raise click.BadParameter(
            f"{text(exc.code, lang)} ({exc.detail})", param_hint="--points"
        ) from exc
    if not folder.is_dir():
        error = MeasurementError("measurement.ct_needs_series", folder.name)
        result: dict = {"status": "refused", "method": request.method, **error.to_dict()}
    else:
        result = Screener(_settings(ctx)).measure_series(folder, request)
    if as_json:
        click.echo(json.dumps(result, ensure_ascii=False))
    else:
        click.echo(str(folder))
        for line in _measurement_lines(result, lang):
            click.echo(line)
        for check in result.get("checks") or ():
            if check["status"] != "ok":
                click.echo(f"  check    {check['check']}: {check[f'message_{lang}']}")
    if result["status"] == "refused":
        ctx.exit(1)


class _plain:
    def __init__(self, items):
        self.items = items

    def __enter__(self):
        return self.items

    def __exit__(self, *exc):
        return False


@main.group()
def models() -> None:
    """List and verify installed models."""


@models.command("list")
@click.pass_context
def models_list(ctx: click.Context) -> None:
    """List installed models."""
    registry = ModelRegistry(_settings(ctx).models_dir)
    if not len(registry):
        click.echo(f"No models installed in {registry.models_dir}")
    for manifest in registry:
        use = "used for referral" if manifest.used_for_referral else "experimental"
        click.echo(
            f"{manifest.id} {manifest.version}  kind={manifest.kind}  "
            f"body_part={manifest.body_part or '-'}  {use}"
        )
    for name, problem in registry.problems.items():
        click.echo(f"{name}: {problem.code} {problem.detail or ''}")


@models.command("verify")
@click.pass_context
def models_verify(ctx: click.Context) -> None:
    """Check every model file against its manifest's sha256; exit 1 on any problem."""
    registry = ModelRegistry(_settings(ctx).models_dir)
    failed = bool(registry.problems)
    for name, problem in registry.problems.items():
        click.echo(f"FAIL {name}: {problem.code} {problem.detail or ''}")
    for manifest in registry:
        for check in verify_files(manifest):
            status = "ok  " if check.ok else "FAIL"
            reason = "" if check.ok else f" {check.code}: {text(check.code or '', 'en')}"
            click.echo(f"{status} {manifest.id} {check.role} {check.path.name}{reason}")
            failed = failed or not check.ok
    if not len(registry) and not failed:
        click.echo(f"No models installed in {registry.models_dir}")
    if failed:
        sys.exit(1)


def system_info(settings: Settings) -> dict[str, object]:
    import cv2
    import numpy
    import onnxruntime
    import pydicom

    from edgeosteo.runtime import import_openvino

    openvino = import_openvino()

    registry = ModelRegistry(settings.models_dir)
    model_status = {}
    for manifest in registry:
        checks = verify_files(manifest)
        model_status[manifest.id] = {
            "version": manifest.version,
            "kind": manifest.kind,
            "verified": all(c.ok for c in checks),
            "used_for_referral": manifest.used_for_referral,
        }
    return {
        "edgeosteo": __version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu": cpu_model(),
        "physical_cores": physical_cores(),
        "cpu_features": cpu_features(),
        "versions": {
            "numpy": numpy.__version__,
            "opencv": cv2.__version__,
            "onnxruntime": onnxruntime.__version__,
            "openvino": openvino.__version__,
            "pydicom": pydicom.__version__,
        },
        "backend": settings.runtime.backend,
        "precision": settings.runtime.precision,
        "data_dir": str(settings.data_dir),
        "models_dir": str(settings.models_dir),
        "models": model_status,
    }


@main.command()
@click.argument("data_dir", type=click.Path(path_type=Path, exists=True, file_okay=False))
@click.option(
    "--json",
    "json_path",
    type=click.Path(path_type=Path),
    required=True,
    help="Where to write the JSON report (PNG plots are written beside it).",
)
@click.option("--body-part", default="KNEE", show_default=True)
@click.pass_context
def evaluate(ctx: click.Context, data_dir: Path, json_path: Path, body_part: str) -> None:
    """Screen a labelled data set (clinical.csv + images/) and report metrics with CIs."""
    from edgeosteo.evaluate import evaluate_dataset, format_table, write_report
    from edgeosteo.screening import Screener

    screener = Screener(_settings(ctx))

    def progress(items):
        with click.progressbar(items, label="Evaluating", file=sys.stderr) as bar:
            yield from bar

    report = evaluate_dataset(data_dir, screener, body_part=body_part, progress=progress)
    written = write_report(report, json_path)
    click.echo(format_table(report))
    click.echo("wrote " + ", ".join(str(p) for p in written))


@main.command("export-labelled")
@click.argument("out_dir", type=click.Path(path_type=Path, file_okay=False))
@click.option(
    "--since",
    default=None,
    metavar="YYYY-MM-DD",
    help="Only DXA results recorded on or after this day (default: every one).",
)
@click.option(
    "--body-part",
    default=None,
    help="Only cases of this body part (edgeosteo evaluate reads one at a time).",
)
@click.pass_context
def export_labelled(
    ctx: click.Context, out_dir: Path, since: str | None, body_part: str | None
) -> None:
    """Write the cases with a DXA result whose patient agreed to research use, de-identified,
    as a data set edgeosteo evaluate reads (clinical.csv with the DXA T-score, images/)."""
    from datetime import date

    from edgeosteo.labelled import export_labelled as write_export
    from edgeosteo.store import CaseStore

    if since is not None:
        try:
            if len(since) != 10:
                raise ValueError(since)
            date.fromisoformat(since)
        except ValueError:
            raise CommandError("follow_up.export_invalid_date", since) from None
    settings = _settings(ctx)
    exported = write_export(CaseStore(settings.data_dir), settings, out_dir, since, body_part)
    click.echo(
        f"wrote {exported.written} labelled case(s), {exported.with_image} with a "
        f"de-identified DICOM, to {exported.out_dir}"
    )
    for reason, count in sorted(exported.not_exported.items()):
        click.echo(f"not exported: {count} ({reason})")
    for code, count in sorted(exported.images_withheld.items()):
        click.echo(f"written without image: {count} ({code})")


def _start_receiver(ctx: click.Context, box: Box) -> None:
    """Start the receiver's parts the settings turn on, sharing the page's workflow; they
    stop when the command ends."""
    settings = box.settings
    try:
        running = box.start_receiver()
    except OSError as exc:
        where = f"{settings.receiver.host}:{settings.receiver.port}"
        raise CommandError("cli.receiver_port_unavailable", f"{where}: {exc}") from exc
    ctx.call_on_close(box.stop)
    if box.receiver.scp_address:
        host, port = box.receiver.scp_address
        click.echo(f"DICOM receiver {settings.receiver.ae_title} listening on {host}:{port}")
    if "worker" in running:
        click.echo("screening worker started")
    if "watch" in running:
        click.echo(f"watching {settings.receiver.watch_dir}")
    if not running and not settings.web.enabled:
        raise CommandError("cli.nothing_to_serve")


def _wait_for_stop() -> None:
    """Run until SIGTERM or Ctrl-C (the page is off; the receiver works in threads)."""
    import signal
    import time

    def stop(signum, frame) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass


@main.command()
@click.option("--host", default=None, help="Address to listen on (default 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Port (default 8080).")
@click.pass_context
def serve(ctx: click.Context, host: str | None, port: int | None) -> None:
    """Start the local screening page (waitress, production mode) together with the DICOM
    receiver, the watch folder and the screening worker. Each is turned off in the
    settings: [web] enabled, [receiver] scp_enabled / worker_enabled / watch_dir."""
    import os

    from edgeosteo.app import build
    from edgeosteo.web.auth import ensure_admin

    settings = _settings(ctx)
    # the data directory's lock first: a second serve refuses before it touches the queue
    box = build(settings, exclusive=True)
    _start_receiver(ctx, box)
    if not settings.web.enabled:
        _wait_for_stop()
        return
    password = ensure_admin(box.store, os.environ)
    if password:
        click.echo(f"First start: created user 'admin' with one-time password {password}")
        click.echo("Write it down now; it is stored only as a hash and is not shown again.")
    host = host or settings.web.host
    port = port or settings.web.port
    click.echo(
        f"edgeosteo {__version__} serving on http://{host}:{port}/ (data: {settings.data_dir})"
    )
    from edgeosteo.appliance import serve_with_watchdog

    # under systemd (Type=notify) this also sends READY=1 and WATCHDOG=1 from a health loop
    serve_with_watchdog(
        box.web,
        host,
        port,
        settings.web.waitress_threads,
        settings.appliance.health_interval_s,
        settings.appliance.health_timeout_s,
    )


@main.command()
@click.option(
    "--backend",
    "backends",
    multiple=True,
    type=click.Choice(["onnxruntime", "openvino"]),
    help="Only this backend (repeatable; default: both).",
)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def selftest(ctx: click.Context, backends: tuple[str, ...], as_json: bool) -> None:
    """Run every model on its stored reference inputs through both backends; exit 1 on any
    mismatch or tampered file."""
    from edgeosteo.runtime import BACKENDS
    from edgeosteo.selftest import run_selftest

    settings = _settings(ctx)
    report = run_selftest(
        settings.models_dir, settings.appliance.selftest_tolerance, backends or BACKENDS
    )
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2))
    else:
        click.echo(f"models: {report.models_dir}")
        for check in report.checks:
            where = f"{check.model_id} {check.backend or ''}".strip()
            click.echo(f"{'ok  ' if check.ok else 'FAIL'} {where} {check.what}: {check.detail}")
        click.echo("SELFTEST PASSED" if report.ok else "SELFTEST FAILED")
    if not report.ok:
        sys.exit(1)


@main.command()
@click.argument("destination", type=click.Path(path_type=Path))
@click.pass_context
def backup(ctx: click.Context, destination: Path) -> None:
    """Back up the data directory (store, images, config) to a .tar.gz file or folder."""
    from edgeosteo.maintenance import backup as write_backup

    written = write_backup(_settings(ctx).data_dir, destination)
    click.echo(f"wrote {written} (holds patient data and secrets: keep it locked away)")


@main.command()
@click.argument("archive", type=click.Path(path_type=Path, exists=True, dir_okay=False))
@click.option("--force", is_flag=True, help="Replace a store that is newer than the backup.")
@click.pass_context
def restore(ctx: click.Context, archive: Path, force: bool) -> None:
    """Restore a backup into the data directory (stop the edgeosteo service first)."""
    from edgeosteo.maintenance import restore as restore_backup
    from edgeosteo.store import lock_data_dir

    lock = lock_data_dir(_settings(ctx).data_dir)  # refuses while the service runs
    try:
        meta = restore_backup(archive, _settings(ctx).data_dir, force=force)
    finally:
        lock.release()
    store = meta.get("store", {})
    click.echo(
        f"restored {store.get('cases')} cases from {meta.get('created_at')} "
        f"into {_settings(ctx).data_dir}"
    )


@main.command("support-bundle")
@click.argument("destination", type=click.Path(path_type=Path), default=Path("."))
@click.option("--no-selftest", is_flag=True, help="Leave the model self-test out.")
@click.pass_context
def support_bundle(ctx: click.Context, destination: Path, no_selftest: bool) -> None:
    """Write logs, versions, model hashes and the config (no secrets, no patient data)."""
    from edgeosteo.maintenance import support_bundle as write_bundle
    from edgeosteo.selftest import run_selftest

    settings = _settings(ctx)
    selftest_report = None
    if not no_selftest:
        selftest_report = run_selftest(
            settings.models_dir, settings.appliance.selftest_tolerance
        ).to_dict()
    written = write_bundle(settings, destination, system_info(settings), selftest_report)
    click.echo(f"wrote {written}")


@main.command()
@click.option("--runs", default=30, show_default=True, help="Timed runs per input.")
@click.option("--warmup", default=3, show_default=True)
@click.option(
    "--json",
    "json_path",
    type=click.Path(path_type=Path),
    default=None,
    help="Also write the figures as JSON here.",
)
@click.option("--no-server", is_flag=True, help="Skip the server memory and cold-start part.")
@click.option(
    "--knee-film",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    default=None,
    help="A real knee radiograph to time the knee models' whole path on (the bundled inputs "
    "hold no knee, so without it the knee check refuses the 2000x2400 JPEG).",
)
@click.option(
    "--ct-series",
    type=click.Path(path_type=Path, exists=True, file_okay=False),
    default=None,
    help="A folder holding one CT series, to time it from disk to the ct-l1 result "
    "(tools/phantoms/ct.py writes one).",
)
@click.option(
    "--ct-points",
    default=None,
    help='With --ct-series: the tap, e.g. \'{"level": "L1", "sagittal": [x, y]}\'.',
)
@click.pass_context
def bench(
    ctx: click.Context,
    runs: int,
    warmup: int,
    json_path: Path | None,
    no_server: bool,
    knee_film: Path | None,
    ct_series: Path | None,
    ct_points: str | None,
) -> None:
    """Per-stage timings, backends side by side, server memory and cold start."""
    import tempfile

    from edgeosteo.bench import format_report, run_bench

    if bool(ct_series) != bool(ct_points):
        raise click.UsageError("--ct-series and --ct-points go together")
    with tempfile.TemporaryDirectory() as workdir:
        report = run_bench(
            _settings(ctx),
            runs,
            warmup,
            Path(workdir),
            include_server=not no_server,
            knee_film=knee_film,
            ct_series=(ct_series, ct_points) if ct_series and ct_points else None,
        )
    click.echo(format_report(report))
    if json_path:
        json_path.write_text(json.dumps(report, indent=2))
        click.echo(f"wrote {json_path}")


@main.command()
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def info(ctx: click.Context, as_json: bool) -> None:
    """Versions, backends, CPU features and model status."""
    details = system_info(_settings(ctx))
    if as_json:
        click.echo(json.dumps(details, indent=2))
        return
    for key, value in details.items():
        if isinstance(value, dict):
            click.echo(f"{key}:")
            for k, v in value.items():
                click.echo(f"  {k}: {v}")
        else:
            click.echo(f"{key}: {value}")


@main.command()
@click.option("--status", "show_status", is_flag=True, help="Show the outbox; send nothing.")
@click.option("--retry-failed", is_flag=True, help="Queue parked records again, then send.")
@click.pass_context
def sync(ctx: click.Context, show_status: bool, retry_failed: bool) -> None:
    """Send pending anonymised results to the regional hub (also run by a systemd timer)."""
    from edgeosteo.store import CaseStore
    from edgeosteo.sync import Sender, SyncConfigError, format_status

    settings = _settings(ctx)
    store = CaseStore(settings.data_dir)
    if show_status:
        click.echo(format_status(store))
        return
    if retry_failed:
        click.echo(f"queued again: {store.retry_failed()}")
    try:
        result = Sender(settings, store).run()
    except SyncConfigError as exc:
        raise CommandError("sync.not_configured", str(exc)) from exc
    counts = store.sync_status().counts
    click.echo(
        f"sent {result.sent}, parked {result.parked}, deferred {result.deferred} "
        f"in {result.requests} requests; outbox now pending {counts.get('pending', 0)}, "
        f"sent {counts.get('sent', 0)}, failed {counts.get('failed', 0)}"
        + (
            f"; DXA results from the hub recorded {result.dxa_recorded}, "
            f"refused {result.dxa_refused}"
            if result.dxa_recorded or result.dxa_refused
            else ""
        )
        + (f" (stopped: {result.stopped})" if result.stopped else "")
    )


@main.group()
def hub() -> None:
    """The reference hub that receives the boxes' results."""


def _hub_store(settings: Settings, database_url: str | None):
    from edgeosteo.hub import database_url as default_url
    from edgeosteo.hub.store import HubStore

    return HubStore(database_url or default_url(settings.hub, settings.data_dir))


@hub.command("serve")
@click.option("--host", default=None, help="Address to listen on (default 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Port (default 8090).")
@click.option("--database-url", default=None, help="SQLAlchemy URL (default: SQLite).")
@click.pass_context
def hub_serve(
    ctx: click.Context, host: str | None, port: int | None, database_url: str | None
) -> None:
    """Serve the hub (waitress). Put it behind a TLS-terminating proxy."""
    import waitress

    from edgeosteo.hub import create_hub_app

    settings = _settings(ctx)
    app = create_hub_app(settings.hub, settings.data_dir, _hub_store(settings, database_url))
    host = host or settings.hub.host
    port = port or settings.hub.port
    click.echo(f"edgeosteo hub {__version__} on http://{host}:{port}/ (FHIR base /fhir)")
    waitress.serve(
        app,
        host=host,
        port=port,
        threads=settings.hub.waitress_threads,
        max_request_body_size=settings.hub.max_body_bytes,
        ident="edgeosteo-hub",
    )


@hub.command("add-device")
@click.argument("site_id")
@click.argument("device_id")
@click.option("--database-url", default=None, help="SQLAlchemy URL (default: SQLite).")
@click.pass_context
def hub_add_device(
    ctx: click.Context, site_id: str, device_id: str, database_url: str | None
) -> None:
    """Issue a bearer token for a box; put it in the box's data dir as sync-token."""
    token = _hub_store(_settings(ctx), database_url).add_credential("device", site_id, device_id)
    click.echo(token)


@hub.command("add-viewer")
@click.argument("name")
@click.option("--database-url", default=None, help="SQLAlchemy URL (default: SQLite).")
@click.pass_context
def hub_add_viewer(ctx: click.Context, name: str, database_url: str | None) -> None:
    """Issue a token for the dashboard (the password at the browser's prompt)."""
    click.echo(_hub_store(_settings(ctx), database_url).add_credential("viewer", "*", name))


@hub.command("add-reporter")
@click.argument("name")
@click.option("--site", default="*", help="Only for this site's cases (default: every site).")
@click.option("--database-url", default=None, help="SQLAlchemy URL (default: SQLite).")
@click.pass_context
def hub_add_reporter(ctx: click.Context, name: str, site: str, database_url: str | None) -> None:
    """Issue a token that gives DXA results to the hub for the boxes (POST /fhir/dxa-results)."""
    store = _hub_store(_settings(ctx), database_url)
    click.echo(store.add_credential("reporter", site, name))


if __name__ == "__main__":
    main()
