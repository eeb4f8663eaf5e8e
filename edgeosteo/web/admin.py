"""Settings for administrators: site policy thresholds, language, sync endpoint, users."""

from __future__ import annotations

import dataclasses
import math
import tomllib
from dataclasses import dataclass
from urllib.parse import urlsplit

import tomli_w
from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from edgeosteo.config import PolicySettings
from edgeosteo.errors import EdgeOsteoError
from edgeosteo.messages import text
from edgeosteo.sync import SyncConfigError, check_endpoint
from edgeosteo.web import LANGUAGES, context, request_language
from edgeosteo.web.auth import MIN_PASSWORD_CHARS, admin_required, hash_password

blueprint = Blueprint("admin", __name__, url_prefix="/settings")
# one line at the head of the printed report
HOSPITAL_NAME_MAX = 60
# a CT series is complete after this long without a slice ([receiver] ct_series_quiet_seconds)
CT_QUIET_SECONDS = (5.0, 3600.0)


@dataclass(frozen=True)
class PolicyField:
    """One site-policy setting as the admin page shows it: what it means, in what unit,
    and the values it may take (PolicySettings checks the same)."""

    name: str  # the key in the [policy] table
    label: object
    explanation: object
    kind: str  # "probability" | "months" | "yesno"
    unit: object = ""
    minimum: float | None = None
    maximum: float | None = None

    def range_text(self) -> str:
        if self.kind == "probability":
            return str(_l("a decimal above 0 and below 1 (0.5 = 50 percent)"))
        if self.kind == "months":
            return str(_l("%(low)d to %(high)d months", low=self.minimum, high=self.maximum))
        return ""


POLICY_FIELDS: tuple[PolicyField, ...] = (
    PolicyField(
        "refer_p_osteoporosis",
        _l("Refer for DXA from this probability of osteoporosis"),
        _l(
            "A recommendation model's probability of osteoporosis at or above this value "
            "gives the result Refer for DXA."
        ),
        "probability",
    ),
    PolicyField(
        "consider_p_osteoporosis",
        _l("Consider DXA from this probability of osteoporosis"),
        _l(
            "At or above this value (and below the referral threshold) the result is "
            "Consider DXA. It may not be higher than the referral threshold."
        ),
        "probability",
    ),
    PolicyField(
        "consider_p_low_bone_mass",
        _l("Consider DXA from this probability of low bone mass"),
        _l(
            "A probability of low bone mass (osteopenia or osteoporosis) at or above this "
            "value gives at least Consider DXA."
        ),
        "probability",
    ),
    PolicyField(
        "rescreen_interval_months",
        _l("Screen again after"),
        _l("The interval a routine (low-risk) result asks for before the next screening."),
        "months",
        _l("months"),
        1,
        120,
    ),
    PolicyField(
        "dxa_locally_available",
        _l("This hospital has a DXA scanner"),
        _l(
            "Ticked: a referred patient is told DXA can be done here. Not ticked: the result "
            "says to arrange DXA at another hospital."
        ),
        "yesno",
    ),
)


@dataclass(frozen=True)
class SettingsForm:
    """What the admin typed, and what is wrong with it (field name to message)."""

    values: dict[str, str]
    problems: dict[str, str]


def _read_config() -> dict:
    """The settings file the box was started with (the one a save writes)."""
    path = context().settings.settings_file
    return tomllib.loads(path.read_text(encoding="utf-8")) if path.exists() else {}


def _render(form: SettingsForm | None = None, status: int = 200):
    box = context()
    config = _read_config()
    if form is None:
        values = {f.name: _shown(getattr(box.settings.policy, f.name)) for f in POLICY_FIELDS}
        values["language"] = config.get("language", box.settings.language)
        values["sync_endpoint"] = config.get("sync", {}).get("endpoint", box.settings.sync.endpoint)
        values["hospital_name"] = config.get("web", {}).get(
            "hospital_name", box.settings.web.hospital_name
        )
        receiver = {**dataclasses.asdict(box.settings.receiver), **config.get("receiver", {})}
        values["ct_series_enabled"] = _shown(bool(receiver["ct_series_enabled"]))
        values["ct_series_quiet_seconds"] = _shown(float(receiver["ct_series_quiet_seconds"]))
        form = SettingsForm(values, {})
    return render_template(
        "settings.html",
        policy_fields=POLICY_FIELDS,
        form=form,
        settings=box.settings,
        users=box.store.list_users(),
        outbox=box.store.outbox_counts(),
        sync=box.store.sync_status(),
    ), status


def _shown(value: object) -> str:
    if isinstance(value, bool):
        return "on" if value else ""
    return f"{value:g}" if isinstance(value, float) else str(value)


@blueprint.route("/", methods=["GET"])
@admin_required
def settings_page():
    return _render()


def _policy_problem(field: PolicyField, raw: str) -> tuple[object, str | None]:
    """The typed value of one field, or the message that says why it is not one."""
    try:
        number = float(raw.replace(",", "."))
    except ValueError:
        number = math.nan
    if field.kind == "months":
        if not math.isfinite(number) or not number.is_integer():
            return None, _("Enter a whole number: %(range)s.", range=field.range_text())
        if not field.minimum <= number <= field.maximum:
            return None, _("Allowed: %(range)s.", range=field.range_text())
        return int(number), None
    if not math.isfinite(number) or not 0.0 < number < 1.0:
        return None, _("Enter a probability %(range)s.", range=field.range_text())
    return number, None


def _hub_problem(endpoint: str) -> str | None:
    """Why the hub address is not one the box can send to, or None."""
    if not endpoint:
        return None
    parts = urlsplit(endpoint)
    sync = context().settings.sync
    try:
        check_endpoint(dataclasses.replace(sync, endpoint=endpoint))
        if not parts.hostname or any(c.isspace() for c in endpoint):
            raise SyncConfigError(endpoint)
    except (SyncConfigError, ValueError):
        return _(
            "Enter the hub's web address, beginning with https:// (for example "
            "https://hub.example.cn/fhir), or leave it empty to keep results on this box."
        )
    return None


@blueprint.route("/", methods=["POST"])
@admin_required
def save_settings():
    box = context()
    config = _read_config()
    policy = dict(config.get("policy", {}))
    values = {name: request.form.get(name, "") for name in request.form if name != "csrf_token"}
    problems: dict[str, str] = {}
    for field in POLICY_FIELDS:
        if field.kind == "yesno":
            policy[field.name] = request.form.get(field.name) == "on"
            continue
        raw = request.form.get(field.name, "").strip()
        if not raw:  # left empty: the value stays as it is
            values[field.name] = _shown(getattr(box.settings.policy, field.name))
            continue
        value, problem = _policy_problem(field, raw)
        if problem:
            problems[field.name] = problem
        else:
            policy[field.name] = value
    refer = policy.get("refer_p_osteoporosis", box.settings.policy.refer_p_osteoporosis)
    consider = policy.get("consider_p_osteoporosis", box.settings.policy.consider_p_osteoporosis)
    if not problems and consider > refer:
        problems["consider_p_osteoporosis"] = _(
            "This may not be higher than the referral threshold (%(refer)s).", refer=_shown(refer)
        )
    endpoint = request.form.get("sync_endpoint", "").strip()
    if problem := _hub_problem(endpoint):
        problems["sync_endpoint"] = problem
    hospital_name = " ".join(request.form.get("hospital_name", "").split())
    if len(hospital_name) > HOSPITAL_NAME_MAX:
        problems["hospital_name"] = _("At most %(count)d characters.", count=HOSPITAL_NAME_MAX)
    ct_quiet = box.settings.receiver.ct_series_quiet_seconds
    raw_quiet = request.form.get("ct_series_quiet_seconds", "").strip()
    if raw_quiet:
        try:
            ct_quiet = float(raw_quiet.replace(",", "."))
        except ValueError:
            ct_quiet = math.nan
        if not CT_QUIET_SECONDS[0] <= ct_quiet <= CT_QUIET_SECONDS[1]:
            problems["ct_series_quiet_seconds"] = _(
                "Enter a number of seconds from %(low)d to %(high)d.",
                low=CT_QUIET_SECONDS[0],
                high=CT_QUIET_SECONDS[1],
            )
    new_policy = None
    if not problems:
        try:
            new_policy = PolicySettings.from_dict(policy)
        except (EdgeOsteoError, ValueError, TypeError) as exc:
            # a rule this page does not know (a hand-edited file): said in the user's language
            problems["policy"] = f"{text('config.invalid', request_language())} ({exc})"
    if problems or new_policy is None:
        flash(_("Not saved: correct the fields marked in red."), "error")
        return _render(SettingsForm(values, problems), 422)
    config["policy"] = policy
    settings = dataclasses.replace(box.settings, policy=new_policy)
    language = request.form.get("language")
    if language in LANGUAGES:
        config["language"] = language
        settings = dataclasses.replace(settings, language=language)
    config.setdefault("sync", {})["endpoint"] = endpoint
    settings = dataclasses.replace(
        settings, sync=dataclasses.replace(settings.sync, endpoint=endpoint)
    )
    config.setdefault("web", {})["hospital_name"] = hospital_name
    settings = dataclasses.replace(
        settings, web=dataclasses.replace(settings.web, hospital_name=hospital_name)
    )
    ct_enabled = request.form.get("ct_series_enabled") == "on"
    config.setdefault("receiver", {}).update(
        ct_series_enabled=ct_enabled, ct_series_quiet_seconds=ct_quiet
    )
    settings = dataclasses.replace(
        settings,
        receiver=dataclasses.replace(
            settings.receiver, ct_series_enabled=ct_enabled, ct_series_quiet_seconds=ct_quiet
        ),
    )
    path = settings.settings_file
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(tomli_w.dumps(config), encoding="utf-8")
    box.apply(settings)
    flash(_("Saved. New screenings use these settings."), "ok")
    return redirect(url_for("admin.settings_page"))


@blueprint.route("/users", methods=["POST"])
@admin_required
def add_user():
    username = request.form.get("username", "").strip()
    password = request.form.get("password", "")
    role = request.form.get("role", "technician")
    if not username or len(password) < MIN_PASSWORD_CHARS or role not in ("admin", "technician"):
        flash(_("Give a user name and a password of at least 8 characters."), "error")
    elif context().store.get_user(username):
        flash(_("This user name is taken."), "error")
    else:
        user = context().store.create_user(username, role, hash_password(password))
        # the admin typed it, so it is one-time: the user chooses their own at first login
        context().store.set_must_change_password(user.id, True)
        flash(
            _(
                "User %(name)s added. They choose their own password at the first login.",
                name=username,
            ),
            "ok",
        )
    return redirect(url_for("admin.settings_page"))
