"""The local screening page: a Flask app factory with small blueprints."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from flask import Flask, g, session
from flask_babel import Babel
from flask_wtf.csrf import CSRFProtect

from edgeosteo.clinical import score_text
from edgeosteo.config import Settings, load_settings
from edgeosteo.decision import stored_evidence
from edgeosteo.messages import text
from edgeosteo.screening import Screener
from edgeosteo.store import CaseStore
from edgeosteo.web.auth import VerifiedCredentials
from edgeosteo.web.service import ScreeningService

LANGUAGES = ("zh_CN", "en")


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


def create_app(settings: Settings | None = None, screener: Screener | None = None) -> Flask:
    settings = settings or load_settings()
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
    store = CaseStore(settings.data_dir)
    screener = screener or Screener(settings)
    app.extensions["edgeosteo"] = {
        "settings": settings,
        "store": store,
        "service": ScreeningService(screener, store, web.concurrent_screenings),
        "api_credentials": VerifiedCredentials(web.api_credentials_cache_seconds),
    }

    Babel(app, locale_selector=request_language)
    csrf = CSRFProtect(app)

    from edgeosteo.web import admin, api, auth, cases, pages, review

    app.register_blueprint(auth.blueprint)
    app.register_blueprint(pages.blueprint)
    app.register_blueprint(review.blueprint)
    app.register_blueprint(cases.blueprint)
    app.register_blueprint(admin.blueprint)
    app.register_blueprint(api.blueprint)
    csrf.exempt(api.blueprint)  # the API takes HTTP Basic credentials, never the cookie

    app.before_request(auth.load_user)
    app.jinja_env.globals["reason_text"] = lambda code: text(code, request_language())
    app.jinja_env.globals["evidence_text"] = lambda reason: stored_evidence(
        reason, request_language()
    )
    app.jinja_env.globals["languages"] = LANGUAGES
    app.jinja_env.filters["percent"] = percent
    app.jinja_env.filters["score"] = score_text

    @app.context_processor
    def inject() -> dict:
        return {"language": request_language(), "current_user": g.get("user")}

    from edgeosteo.web.errors import register_error_handlers

    register_error_handlers(app)
    return app


def percent(probability: float) -> str:
    """A probability as a whole percentage that never claims certainty."""
    value = probability * 100.0
    if value > 99.0:
        return ">99%"
    if value < 1.0:
        return "<1%"
    return f"{value:.0f}%"


def request_language() -> str:
    """The language the current request's page is shown in: the user's, else the one chosen
    before logging in, else the box's."""
    user = g.get("user")
    if user is not None and user.language in LANGUAGES:
        return user.language
    chosen = session.get("language")
    if chosen in LANGUAGES:
        return chosen
    language = extension("settings").language
    return language if language in LANGUAGES else "zh_CN"


def extension(name: str):
    from flask import current_app

    return current_app.extensions["edgeosteo"][name]
