"""Accounts: log in and out, roles, the first admin, login rate limiting."""

from __future__ import annotations

import functools
import hashlib
import hmac
import math
import secrets
import threading
import time
import unicodedata
import urllib.parse
from collections.abc import Callable, Mapping

from flask import (
    Blueprint,
    abort,
    flash,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_babel import gettext as _
from werkzeug.security import check_password_hash, generate_password_hash

from edgeosteo.store import CaseStore, User

blueprint = Blueprint("auth", __name__)
PASSWORD_METHOD = "scrypt"
ADMIN_PASSWORD_ENV = "EDGEOSTEO_ADMIN_PASSWORD"


def safe_next(target: str | None, default: str) -> str:
    """``target`` when it is a path on this site, else ``default``. After stripping, a target
    holding a control character or a backslash is refused (browsers drop tabs and newlines
    and read a backslash as a slash, so either can turn ``/`` + ``/evil`` into ``//evil``), and
    so is one with a scheme, a network location or a leading ``//``, as it stands or
    percent-decoded once."""
    target = (target or "").strip()
    # the percent-decoded form is held to the same rules: one more decoding (a proxy, a
    # second redirect) must not make it hostile either
    for form in (target, urllib.parse.unquote(target)):
        if not form or any(c == "\\" or unicodedata.category(c)[0] == "C" for c in form):
            return default
        parts = urllib.parse.urlsplit(form)
        if parts.scheme or parts.netloc or not form.startswith("/") or form.startswith("//"):
            return default
    return target


def hash_password(password: str) -> str:
    return generate_password_hash(password, method=PASSWORD_METHOD)


def ensure_admin(store: CaseStore, environ: Mapping[str, str]) -> str | None:
    """Create the first admin when no account exists. Returns the one-time password when
    one was generated (the caller shows it once on the console), else None."""
    if store.count_users():
        return None
    given = environ.get(ADMIN_PASSWORD_ENV)
    password = given or secrets.token_urlsafe(9)
    admin = store.create_user("admin", "admin", hash_password(password))
    if not given:  # shown once on the console: it must be changed at the first login
        store.set_must_change_password(admin.id, True)
    return None if given else password


def load_user() -> None:
    from edgeosteo.web import context

    g.settings = context().settings
    user_id = session.get("user_id")
    user = context().store.get_user_by_id(user_id) if user_id else None
    if user_id and (user is None or session.get("generation") != user.session_generation):
        # logged out, password changed, or the account is gone: this cookie is spent
        session.pop("user_id", None)
        session.pop("generation", None)
        user = None
    g.user = user


def login_required(view: Callable) -> Callable:
    @functools.wraps(view)
    def wrapped(*args, **kwargs):
        if g.get("user") is None:
            return redirect(url_for("auth.login", next=request.path))
        return view(*args, **kwargs)

    return wrapped


def admin_required(view: Callable) -> Callable:
    @functools.wraps(view)
    @login_required
    def wrapped(*args, **kwargs):
        if not g.user.is_admin:
            abort(403)
        return view(*args, **kwargs)

    return wrapped


@functools.cache
def dummy_hash() -> str:
    """A hash of a random password made the way real ones are (computed once, at start):
    an unknown user name is checked against it, so that path costs one verification, the
    same as a wrong password for a real user."""
    return hash_password(secrets.token_urlsafe(16))


def check_credentials(
    store: CaseStore, username: str, password: str, lock_after: int, lock_seconds: float
) -> tuple[User | None, str | None]:
    """The user, or None with the reason: 'locked' or 'invalid'. An unknown user name costs
    one password verification (against dummy_hash), like a wrong password, and is counted
    and locked the same way (store.record_unknown_login), so neither the time nor the
    answer tells it from a real one."""
    user = store.get_user(username)
    if user is None:
        if store.unknown_login_locked(username):
            return None, "locked"
        check_password_hash(dummy_hash(), password)
        store.record_unknown_login(username, lock_after, lock_seconds)
        return None, "invalid"
    if user.locked_until > time.time():
        return None, "locked"
    # a disabled account answers as a wrong password does, after the same one verification
    if not check_password_hash(user.password_hash, password) or user.disabled:
        store.record_login(user.id, False, lock_after, lock_seconds)
        return None, "invalid"
    store.record_login(user.id, True, lock_after, lock_seconds)
    return user, None


class VerifiedCredentials:
    """The API sends the password with every request, and scrypt costs about 0.1 s of CPU
    each time on a small box. A pair that verified is remembered for ``ttl_s`` seconds,
    under a keyed hash that includes the stored password hash: a changed password no longer
    matches, and a wrong password is always checked (and counted) in full."""

    MAX_ENTRIES = 1024

    def __init__(self, ttl_s: float) -> None:
        self.ttl_s = ttl_s
        self._key = secrets.token_bytes(32)
        self._until: dict[str, float] = {}
        self._lock = threading.Lock()

    def _digest(self, user: User, password: str) -> str:
        message = f"{user.id}\0{user.password_hash}\0{password}".encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()

    def check(
        self, store: CaseStore, username: str, password: str, lock_after: int, lock_seconds: float
    ) -> tuple[User | None, str | None]:
        user = store.get_user(username)
        now = time.monotonic()
        if (
            self.ttl_s > 0
            and user is not None
            and not user.disabled
            and user.locked_until <= time.time()
        ):
            with self._lock:
                if self._until.get(self._digest(user, password), 0.0) > now:
                    return user, None
        verified, problem = check_credentials(store, username, password, lock_after, lock_seconds)
        if verified is not None and self.ttl_s > 0:
            with self._lock:
                if len(self._until) >= self.MAX_ENTRIES:
                    self._until = {k: t for k, t in self._until.items() if t > now}
                if len(self._until) < self.MAX_ENTRIES:
                    self._until[self._digest(verified, password)] = now + self.ttl_s
        return verified, problem


@blueprint.route("/login", methods=["GET", "POST"])
def login():
    from edgeosteo.web import context

    error = None
    if request.method == "POST":
        web = context().settings.web
        user, problem = check_credentials(
            context().store,
            request.form.get("username", "").strip(),
            request.form.get("password", ""),
            web.login_attempts_before_lock,
            web.login_lock_seconds,
        )
        if user is not None:
            language = session.get("language")
            session.clear()
            session["user_id"] = user.id
            session["generation"] = user.session_generation
            session.permanent = True
            if language and not user.language:
                session["language"] = language
            return redirect(safe_next(request.args.get("next"), url_for("pages.new_screening")))
        # the same words for a name with no account, which locks the same way
        error = (
            _(
                "Too many failed attempts. Wait %(minutes)d minutes and try again, or ask an "
                "administrator to unlock the account.",
                minutes=max(1, math.ceil(web.login_lock_seconds / 60)),
            )
            if problem == "locked"
            else _("Wrong user name or password.")
        )
    return render_template("login.html", error=error), (401 if error else 200)


# what a user who must change their password may still reach
OPEN_WHILE_CHANGE_DUE = frozenset(
    {"auth.change_password", "auth.logout", "auth.set_language", "auth.login", "static"}
)
MIN_PASSWORD_CHARS = 8


def require_password_change():
    """After a one-time or reset password, every page leads to the change page first."""
    user = g.get("user")
    due = user is not None and user.must_change_password
    if due and request.endpoint not in OPEN_WHILE_CHANGE_DUE:
        return redirect(url_for("auth.change_password"))
    return None


def _password_problem(user, current: str, new: str, repeated: str) -> str | None:
    if not check_password_hash(user.password_hash, current):
        return _("The current password is not right.")
    if len(new) < MIN_PASSWORD_CHARS:
        return _("The new password needs at least %(count)d characters.", count=MIN_PASSWORD_CHARS)
    if new != repeated:
        return _("The two new passwords are not the same.")
    if new == current or new.lower() == user.username.lower():
        return _("Choose a new password that is not the old one or your user name.")
    return None


@blueprint.route("/account/password", methods=["GET", "POST"])
@login_required
def change_password():
    from edgeosteo.web import context

    user = g.user
    problem = None
    if request.method == "POST":
        problem = _password_problem(
            user,
            request.form.get("current", ""),
            request.form.get("new", ""),
            request.form.get("repeated", ""),
        )
        if problem is None:
            store = context().store
            store.set_password(user.id, hash_password(request.form["new"]), actor=user.username)
            store.set_must_change_password(user.id, False)
            # the change ended every session of this account; this one carries on
            session["generation"] = store.get_user_by_id(user.id).session_generation
            flash(_("Password changed."), "ok")
            return redirect(url_for("pages.new_screening"))
    return render_template(
        "account_password.html",
        problem=problem,
        forced=user.must_change_password,
        min_chars=MIN_PASSWORD_CHARS,
    ), (422 if problem else 200)


@blueprint.route("/logout", methods=["POST"])
def logout():
    from edgeosteo.web import context

    if g.get("user") is not None:
        context().store.end_sessions(g.user.id)
    session.clear()
    return redirect(url_for("auth.login"))


@blueprint.route("/language", methods=["POST"])
def set_language():
    from edgeosteo.web import LANGUAGES, context

    language = request.form.get("language")
    if language in LANGUAGES:
        session["language"] = language
        if g.get("user") is not None:
            context().store.set_user_language(g.user.id, language)
    return redirect(safe_next(request.form.get("next"), "/"))
