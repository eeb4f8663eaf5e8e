"""Extract the page's strings and rebuild the zh_CN catalogue.

    python tools/i18n.py            # extract, merge, compile (fails on untranslated strings)

Translations (Simplified Chinese, locale zh_CN) live in edgeosteo/web/translations/zh/LC_MESSAGES/
messages.po (Babel reads zh_CN as zh_Hans_CN, whose gettext fallback is "zh"); edit it
there. This script only merges new strings in (empty) and compiles the .mo file.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po, write_po

ROOT = Path(__file__).resolve().parents[1]
WEB = ROOT / "edgeosteo" / "web"
PO = WEB / "translations" / "zh" / "LC_MESSAGES" / "messages.po"
MO = PO.with_suffix(".mo")


def main() -> int:
    pot = ROOT / ".work" / "messages.pot"
    pot.parent.mkdir(exist_ok=True)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "babel.messages.frontend",
            "extract",
            "-F",
            str(WEB / "babel.cfg"),
            "-k",
            "_l",
            "--omit-header",
            "-o",
            str(pot),
            ".",  # relative, so the catalogue's source references do not name this checkout
        ],
        check=True,
        cwd=ROOT,
        capture_output=True,
    )
    with pot.open("rb") as handle:
        template = read_po(handle)
    with PO.open("rb") as handle:
        catalog = read_po(handle, locale="zh_CN")
    catalog.update(template, no_fuzzy_matching=True)
    with PO.open("wb") as handle:
        write_po(handle, catalog, omit_header=False, sort_output=False, width=100)
    with MO.open("wb") as handle:
        write_mo(handle, catalog)
    missing = [m.id for m in catalog if m.id and not m.string]
    for message_id in missing:
        print(f"untranslated: {message_id}")
    return 1 if missing else 0


if __name__ == "__main__":
    raise SystemExit(main())
