"""Settings for administrators: site policy thresholds, language, sync endpoint, users."""

from __future__ import annotations

import dataclasses
import math
import secrets
import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

import tomli_w
from flask import Blueprint, flash, g, make_response, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from edgeosteo.config import PolicySettings
from edgeosteo.errors import EdgeOsteoError
from edgeosteo.messages import text
from edgeosteo.records import User
from edgeosteo.store.users import LastAdmin
from edgeosteo.sync import SyncConfigError, check_endpoint
from edgeosteo.web import LANGUAGES, context, request_language
from edgeosteo.web.auth import MIN_PASSWORD_CHARS, admin_required, hash_password

blueprint = Blueprint("admin", __name__, url_prefix="/settings")
# one line at the head of the printed report
HOSPITAL_NAME_MAX = 60
# the users section shows these messages, where an action's answer lands (base.html skips them)
ACCOUNT_OK, ACCOUNT_ERROR = "account ok", "account error"
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


# the account actions the users section lists, newest first
AUDIT_SHOWN = 50
ACTION_NAMES = {
    "create": _l("added the user"),
    "reset_password": _l("reset the password"),
    "unlock": _l("unlocked"),
    "disable": _l("disabled"),
    "enable": _l("enabled"),
    "delete": _l("deleted"),
    "role_change": _l("changed the role"),
    "password_change": _l("changed their own password"),
}


@dataclass(frozen=True)
class OneTimePassword:
    """A password an admin's reset made, shown once on the answer to that reset, never stored
    in the clear, flashed (the session cookie) or logged."""

    username: str
    password: str


def _render(
    form: SettingsForm | None = None, status: int = 200, one_time: OneTimePassword | None = None
):
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
        audit=box.store.account_audit(AUDIT_SHOWN),
        action_names=ACTION_NAMES,
        now=time.time(),
        one_time=one_time,
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
        flash(_("Give a user name and a password of at least 8 characters."), ACCOUNT_ERROR)
    elif context().store.get_user(username):
        flash(_("This user name is taken."), ACCOUNT_ERROR)
    else:
        # the admin typed it, so it is one-time: the user chooses their own at first login
        context().store.create_user(
            username,
            role,
            hash_password(password),
            actor=g.user.username,
            must_change_password=True,
        )
        flash(
            _(
                "User %(name)s added. They choose their own password at the first login.",
                name=username,
            ),
            ACCOUNT_OK,
        )
    return _users_page()


# read out and typed by hand: no 0/o, 1/l/i to mistake (31**10, about 2**49, with the lockout)
ONE_TIME_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"
ONE_TIME_CHARS = 10


def one_time_password() -> str:
    return "".join(secrets.choice(ONE_TIME_ALPHABET) for _ in range(ONE_TIME_CHARS))


def _say(code: str, **values: str) -> str:
    """The catalogue's sentence for an account code in the page's language."""
    return text(code, request_language()).format(**values)


def _users_page():
    return redirect(url_for("admin.settings_page", _anchor="users"))


def _refusal(target: User | None, not_on_self: bool):
    """The answer that refuses an action on ``target``: gone, or the admin themselves where
    ``not_on_self`` (they would lock themselves out: said as the last-admin reason when it is
    that too); None when it may go ahead."""
    if target is None:
        flash(_say("account.not_found"), ACCOUNT_ERROR)
        return _users_page()
    if not_on_self and target.id == g.user.id:
        last = context().store.is_last_enabled_admin(target.id)
        code = "account.last_admin" if last else "account.not_yourself"
        flash(_say(code, name=target.username), ACCOUNT_ERROR)
        return _users_page()
    return None


def _on_user(user_id: int, action: Callable[[User], str], *, not_on_self: bool):
    """Run ``action`` on the user (it returns the code of what it did) unless _refusal
    refuses, or the store does for the last enabled admin (LastAdmin)."""
    target = context().store.get_user_by_id(user_id)
    if (refused := _refusal(target, not_on_self)) is not None:
        return refused
    try:
        code = action(target)
    except LastAdmin:
        flash(_say("account.last_admin", name=target.username), ACCOUNT_ERROR)
        return _users_page()
    flash(_say(code, name=target.username), ACCOUNT_OK)
    return _users_page()


@blueprint.route("/users/<int:user_id>/reset", methods=["POST"])
@admin_required
def reset_password(user_id: int):
    """A new one-time password, shown once on this answer (not after a redirect, so it never
    travels in the session cookie); the user must change it at the next login."""
    store = context().store
    target = store.get_user_by_id(user_id)
    if (refused := _refusal(target, not_on_self=True)) is not None:
        return refused
    password = one_time_password()
    store.reset_password(target.id, hash_password(password), actor=g.user.username)
    flash(_say("account.password_reset", name=target.username), ACCOUNT_OK)
    response = make_response(*_render(one_time=OneTimePassword(target.username, password)))
    response.headers["Cache-Control"] = "no-store"
    return response


@blueprint.route("/users/<int:user_id>/unlock", methods=["POST"])
@admin_required
def unlock_user(user_id: int):
    def unlock(target: User) -> str:
        context().store.unlock_user(target.id, actor=g.user.username)
        return "account.unlocked"

    return _on_user(user_id, unlock, not_on_self=False)


@blueprint.route(
    "/users/<int:user_id>/disable",
    methods=["POST"],
    endpoint="disable_user",
    defaults={"disabled": True},
)
@blueprint.route(
    "/users/<int:user_id>/enable",
    methods=["POST"],
    endpoint="enable_user",
    defaults={"disabled": False},
)
@admin_required
def set_disabled(user_id: int, disabled: bool):
    def change(target: User) -> str:
        context().store.set_disabled(target.id, disabled, actor=g.user.username)
        return "account.disabled" if disabled else "account.enabled"

    # disabling oneself is a lock-out; enabling is not
    return _on_user(user_id, change, not_on_self=disabled)


@blueprint.route("/users/<int:user_id>/role", methods=["POST"])
@admin_required
def change_role(user_id: int):
    role = request.form.get("role", "")
    if role not in ("admin", "technician"):
        flash(_say("account.role_invalid"), ACCOUNT_ERROR)
        return _users_page()

    def change(target: User) -> str:
        context().store.set_role(target.id, role, actor=g.user.username)
        return "account.made_admin" if role == "admin" else "account.made_technician"

    # making oneself an admin again is no lock-out; demoting oneself is
    return _on_user(user_id, change, not_on_self=role != "admin")


@blueprint.route("/users/<int:user_id>/delete", methods=["GET"])
@admin_required
def confirm_delete(user_id: int):
    """The confirm step: what deleting means, then a second button that does it."""
    target = context().store.get_user_by_id(user_id)
    if (refused := _refusal(target, not_on_self=True)) is not None:
        return refused
    return render_template("user_delete.html", target=target)


@blueprint.route("/users/<int:user_id>/delete", methods=["POST"])
@admin_required
def delete_user(user_id: int):
    def delete(target: User) -> str:
        context().store.delete_user(target.id, actor=g.user.username)
        return "account.deleted"

    return _on_user(user_id, delete, not_on_self=True)
