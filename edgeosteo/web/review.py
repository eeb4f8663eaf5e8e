"""A film photo's review before screening: the photo beside the film as it will be read.

The new-screening page posts the chosen photo here (and again with four clicked corners,
when the film was not found or was found wrongly) and shows what comes back; the corners
then travel with the form so the screening does not search for the film again.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping

import cv2
import numpy as np
from flask import Blueprint, jsonify, request

from edgeosteo.config import DISPLAY_LONG_SIDE_PX
from edgeosteo.errors import IntakeError
from edgeosteo.intake.photo import FilmCorners
from edgeosteo.intake.pixels import shrink_to_long_side
from edgeosteo.messages import text
from edgeosteo.screening import PhotoReview
from edgeosteo.web.auth import login_required

blueprint = Blueprint("review", __name__)
GLARE_TINT_BGR = np.array([40, 40, 230], np.float32)  # reflections shown in red
# previews travel over clinic Wi-Fi to a phone: as JPEG a review is ~200 kB (PNG film: ~1 MB)
PHOTO_JPEG_QUALITY = 85
FILM_JPEG_QUALITY = 90


def film_corners_from_form(form: Mapping[str, str]) -> FilmCorners | None:
    """``film_corners`` (a JSON list of four [x, y] in photo pixels) and
    ``film_corners_source`` ("user" or "detected") from the form; None when blank."""
    raw = (form.get("film_corners") or "").strip()
    if not raw:
        return None
    return FilmCorners.from_json(raw, (form.get("film_corners_source") or "user").strip())


def _data_url(kind: str, image: np.ndarray, *params: int) -> str:
    ok, encoded = cv2.imencode(f".{kind}", image, list(params))
    if not ok:
        raise ValueError(f"{kind} could not be encoded")
    mime = "jpeg" if kind == "jpg" else kind
    return f"data:image/{mime};base64,{base64.b64encode(encoded.tobytes()).decode('ascii')}"


def _shrink(image: np.ndarray, interpolation: int = cv2.INTER_AREA) -> np.ndarray:
    return shrink_to_long_side(image, DISPLAY_LONG_SIDE_PX, interpolation)[0]


def review_json(review: PhotoReview, language: str) -> dict[str, object]:
    photo = review.photo_rgb
    film = review.film
    gray = _shrink(film.radiograph.pixels)
    bgr = np.repeat(np.clip(gray * 255.0, 0, 255)[:, :, None], 3, axis=2)
    glare = _shrink(film.glare_mask.astype(np.uint8), cv2.INTER_NEAREST).astype(bool)
    bgr[glare] = 0.4 * bgr[glare] + 0.6 * GLARE_TINT_BGR
    corners = review.corners
    return {
        "photo": {
            "width": int(photo.shape[1]),
            "height": int(photo.shape[0]),
            "image": _data_url(
                "jpg",
                _shrink(cv2.cvtColor(photo, cv2.COLOR_RGB2BGR)),
                cv2.IMWRITE_JPEG_QUALITY,
                PHOTO_JPEG_QUALITY,
            ),
        },
        "film": {
            "image": _data_url(
                "jpg", bgr.astype(np.uint8), cv2.IMWRITE_JPEG_QUALITY, FILM_JPEG_QUALITY
            )
        },
        "corners": [[round(x, 1), round(y, 1)] for x, y in corners.points] if corners else None,
        "corner_source": film.corner_source,
        "verdict": review.quality.verdict,
        "usable": review.quality.usable,
        "messages": [
            {"code": gate.code, "verdict": gate.verdict, "text": text(gate.code, language)}
            for gate in review.quality.gates
            if gate.verdict != "pass"
        ],
    }


@blueprint.route("/screenings/photo-review", methods=["POST"])
@login_required
def photo_review():
    from edgeosteo.web import context, request_language

    language = request_language()
    upload = request.files.get("image")
    data = upload.read() if upload is not None else b""
    try:
        review = context().cases.review_photo(data, film_corners_from_form(request.form))
    except IntakeError as exc:
        response = jsonify({"code": exc.code, "text": text(exc.code, language)})
        response.status_code = 422
        return response
    return jsonify(review_json(review, language))
