"""Friendly error pages (and JSON for the API) in the user's language."""

from __future__ import annotations

from flask import Flask, jsonify, render_template, request
from flask_babel import gettext as _
from flask_wtf.csrf import CSRFError


def _wants_json() -> bool:
    return request.path.startswith("/api/") or request.path == "/healthz"


def register_error_handlers(app: Flask) -> None:
    def page(status: int, title: str, message: str):
        if _wants_json():
            return jsonify({"error": {"status": status, "message": message}}), status
        return render_template("error.html", title=title, message=message), status

    @app.errorhandler(413)
    def too_large(_error):
        limit_mb = app.config["MAX_CONTENT_LENGTH"] // (1024 * 1024)
        return page(
            413,
            _("File too large"),
            _(
                "The file is larger than %(limit)s MB. Export the image at a lower "
                "resolution and try again.",
                limit=limit_mb,
            ),
        )

    @app.errorhandler(403)
    def forbidden(_error):
        return page(403, _("Not allowed"), _("Only an administrator can open this page."))

    @app.errorhandler(404)
    def not_found(_error):
        return page(404, _("Not found"), _("This page or case does not exist."))

    @app.errorhandler(CSRFError)
    def csrf_failed(_error):
        return page(
            400,
            _("Form expired"),
            _("The form has expired. Go back, reload the page and try again."),
        )
