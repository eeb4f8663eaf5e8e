"""Settings for administrators: site policy thresholds, language, sync endpoint, users."""

from __future__ import annotations

import dataclasses
import tomllib

import tomli_w
from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _

from edgeosteo.config import PolicySettings
from edgeosteo.errors import EdgeOsteoError
from edgeosteo.web import LANGUAGES, context
from edgeosteo.web.auth import admin_required, hash_password

blueprint = Blueprint("admin", __name__, url_prefix="/settings")
POLICY_FIELDS = (
    "refer_p_osteoporosis",
    "consider_p_osteoporosis",
    "consider_p_low_bone_mass",
    "rescreen_interval_months",
    "dxa_locally_available",
)


def _read_config() -> dict:
    """The settings file the box was started with (the one a save writes)."""
    path = context().settings.settings_file
    return tomllib.loads(path.read_text(encoding="utf-8")) if path.exists() else {}


@blueprint.route("/", methods=["GET"])
@admin_required
def settings_page():
    box = context()
    return render_template(
        "settings.html",
        policy=box.settings.policy,
        policy_fields=POLICY_FIELDS,
        settings=box.settings,
        config=_read_config(),
        users=box.store.list_users(),
        outbox=box.store.outbox_counts(),
        sync=box.store.sync_status(),
    )


@blueprint.route("/", methods=["POST"])
@admin_required
def save_settings():
    box = context()
    config = _read_config()
    policy = dict(config.get("policy", {}))
    defaults = PolicySettings()
    for name in POLICY_FIELDS:
        current = getattr(defaults, name)
        if isinstance(current, bool):
            policy[name] = request.form.get(name) == "on"
            continue
        raw = request.form.get(name, "").strip()
        if raw:
            try:
                policy[name] = int(raw) if isinstance(current, int) else float(raw)
            except ValueError:
                flash(_("%(field)s must be a number.", field=name), "error")
                return redirect(url_for("admin.settings_page"))
    try:
        new_policy = PolicySettings.from_dict(policy)
    except (EdgeOsteoError, ValueError, TypeError) as exc:
        flash(_("These thresholds are not valid: %(detail)s", detail=str(exc)), "error")
        return redirect(url_for("admin.settings_page"))
    config["policy"] = policy
    settings = dataclasses.replace(box.settings, policy=new_policy)
    language = request.form.get("language")
    if language in LANGUAGES:
        config["language"] = language
        settings = dataclasses.replace(settings, language=language)
    endpoint = request.form.get("sync_endpoint", "").strip()
    config.setdefault("sync", {})["endpoint"] = endpoint
    settings = dataclasses.replace(
        settings, sync=dataclasses.replace(settings.sync, endpoint=endpoint)
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
    if not username or len(password) < 8 or role not in ("admin", "technician"):
        flash(_("Give a user name and a password of at least 8 characters."), "error")
    elif context().store.get_user(username):
        flash(_("This user name is taken."), "error")
    else:
        context().store.create_user(username, role, hash_password(password))
        flash(_("User %(name)s added.", name=username), "ok")
    return redirect(url_for("admin.settings_page"))
