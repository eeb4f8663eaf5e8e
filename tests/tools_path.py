from pathlib import Path

PO = (
    Path(__file__).resolve().parents[1]
    / "edgeosteo"
    / "web"
    / "translations"
    / "zh"
    / "LC_MESSAGES"
    / "messages.po"
)
