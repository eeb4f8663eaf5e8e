from __future__ import annotations

import re
from pathlib import Path

from edgeosteo.messages import CATALOGUE, text

PACKAGE = Path(__file__).resolve().parents[1] / "edgeosteo"
# every code family a person can see; a family missing here goes unchecked
CODE_LITERAL = re.compile(
    r"[\"']((?:intake|quality|model|config|photo|receiver|decision|cli|bench|tool|"
    r"maintenance|request|measurement|dxa|follow_up|calibration|site|account)\.[a-z0-9_]+"
    r"|(?:hub|sync)\.dxa_[a-z0-9_]+)[\"']"
)
CJK = re.compile(r"[\u4e00-\u9fff]")


def test_every_code_used_in_the_package_has_both_languages():
    used = set()
    for path in PACKAGE.rglob("*.py"):
        used.update(CODE_LITERAL.findall(path.read_text(encoding="utf-8")))
    assert len(used) > 20
    missing = sorted(code for code in used if code not in CATALOGUE)
    assert missing == []
    # the photo path's codes are among those checked (they live in messages_photo.py)
    assert {"photo.no_film_found", "photo.too_narrow"} <= used


def test_every_catalogue_entry_is_complete():
    for code, (english, chinese) in CATALOGUE.items():
        assert english.strip() and chinese.strip(), code
        assert CJK.search(chinese), code
        assert not CJK.search(english), code


def test_text_falls_back_to_the_code_for_unknown_codes():
    assert text("intake.truncated", "zh_CN") != text("intake.truncated", "en")
    assert text("no.such_code") == "no.such_code"
