"""The local screening page: a Flask app factory with small blueprints."""

from __future__ import annotations

import os
import secrets
import threading
from pathlib import Path

from flask import Flask, Response, current_app, g, session
from flask_babel import Babel
from flask_wtf.csrf import CSRFProtect

from edgeosteo.cases import CaseWorkflow
from edgeosteo.clinical import DISPLAY_NAMES, score_text
from edgeosteo.config import Settings
from edgeosteo.decision import stored_evidence
from edgeosteo.findings import probability_text, t_score_range_text
from edgeosteo.messages import text
from edgeosteo.store import CaseStore
from edgeosteo.web import clock
from edgeosteo.web.auth import VerifiedCredentials, dummy_hash
from edgeosteo.web.form import body_part_name

LANGUAGES = ("zh_CN", "en")
EXTENSION = "edgeosteo"


class PageContext:
    """What the page's blueprints share: one typed object in ``app.extensions``.

    The settings can change while the box runs (the admin page saves them); readers get
    one consistent snapshot, and a change replaces it whole, under a lock."""

    def __init__(
        self, settings: Settings, cases: CaseWorkflow, api_credentials: VerifiedCredentials
    ) -> None:
        self._settings = settings
        self._lock = threading.Lock()
        self.cases = cases
        self.api_credentials = api_credentials

    @property
    def settings(self) -> Settings:
        return self._settings

    @property
    def store(self) -> CaseStore:
        return self.cases.store

    def apply(self, settings: Settings) -> None:
        """Use these settings from the next request on, and the new policy from the next
        screening on (the worker's included: they share the screener)."""
        with self._lock:
            self._settings = settings
            self.cases.screener.set_policy(settings.policy)


# The page loads only its own script and stylesheet; the photo review and the heatmaps are
# data: URLs in <img>. No inline script, no inline style, no framing by any site.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; "
    "img-src 'self' data: blob:; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def security_headers(response: Response) -> Response:
    """The headers every answer carries: pages, the API, errors and static files."""
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


def _secret_key(data_dir: Path) -> str:
    path = data_dir / "web-secret-key"
    if path.exists():
        return path.read_text().strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_hex(32)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(key)
    return key


def create_app(settings: Settings, workflow: CaseWorkflow) -> Flask:
    """The page for one box; ``edgeosteo.app.build`` composes the workflow it serves."""
    app = Flask(__name__)
    web = settings.web
    app.config.update(
        SECRET_KEY=_secret_key(settings.data_dir),
        MAX_CONTENT_LENGTH=web.max_upload_bytes,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Strict",
        SESSION_COOKIE_SECURE=web.https,
        PERMANENT_SESSION_LIFETIME=web.session_minutes * 60,
        WTF_CSRF_TIME_LIMIT=None,
        BABEL_TRANSLATION_DIRECTORIES=str(Path(__file__).parent / "translations"),
    )
    app.extensions[EXTENSION] = PageContext(
        settings, workflow, VerifiedCredentials(web.api_credentials_cache_seconds)
    )

    dummy_hash()  # once, at start: an unknown user name's login then costs one check
    Babel(app, locale_selector=request_language)
    csrf = CSRFProtect(app)

    from edgeosteo.web import (
        admin,
        api,
        auth,
        calibration,
        cases,
        ct,
        follow_up,
        measure,
        pages,
        review,
    )

    app.register_blueprint(auth.blueprint)
    app.register_blueprint(pages.blueprint)
    app.register_blueprint(review.blueprint)
    app.register_blueprint(cases.blueprint)
    app.register_blueprint(measure.blueprint)
    app.register_blueprint(ct.blueprint)
    app.register_blueprint(follow_up.blueprint)
    app.register_blueprint(admin.blueprint)
    app.register_blueprint(calibration.blueprint)
    app.register_blueprint(api.blueprint)
    csrf.exempt(api.blueprint)  # the API takes HTTP Basic credentials, never the cookie

    app.before_request(auth.load_user)
    app.before_request(auth.require_password_change)
    app.after_request(security_headers)
    app.jinja_env.globals["reason_text"] = lambda code: text(code, request_language())
    app.jinja_env.globals["evidence_text"] = lambda reason: stored_evidence(
        reason, request_language()
    )
    app.jinja_env.globals["languages"] = LANGUAGES
    app.jinja_env.globals["body_part_name"] = body_part_name
    app.jinja_env.globals["instrument_name"] = lambda name: DISPLAY_NAMES.get(
        name, (name.upper(), name.upper())
    )[1 if request_language().startswith("zh") else 0]
    app.jinja_env.filters["percent"] = probability_text
    app.jinja_env.filters["t_score_range"] = t_score_range_text
    app.jinja_env.filters["local_time"] = lambda stamp, seconds=False: clock.local_text(
        stamp, box_zone(), seconds
    )
    app.jinja_env.filters["local_date"] = lambda stamp: clock.local_text(stamp, box_zone())[:10]
    app.jinja_env.globals["zone_label"] = lambda stamp=None: clock.zone_label(stamp, box_zone())
    app.jinja_env.filters["score"] = score_text

    @app.context_processor
    def inject() -> dict:
        if "user" not in g:
            # an error raised before the views' hooks ran (CSRF reading an upload over the
            # size limit gives 413 first): the page still knows who is logged in
            auth.load_user()
        return {"language": request_language(), "current_user": g.get("user")}

    from edgeosteo.web.errors import register_error_handlers

    register_error_handlers(app)
    return app


def box_zone():
    """The time zone the page shows times in (``[web] time_zone``; None: the system's)."""
    return clock.zone(context().settings.web.time_zone)


def request_language() -> str:
    """The language the current request's page is shown in: the user's, else the one chosen
    before logging in, else the box's."""
    user = g.get("user")
    if user is not None and user.language in LANGUAGES:
        return user.language
    chosen = session.get("language")
    if chosen in LANGUAGES:
        return chosen
    language = context().settings.language
    return language if language in LANGUAGES else "zh_CN"


def context() -> PageContext:
    """The current app's box: settings, the case workflow and its store."""
    return current_app.extensions[EXTENSION]
