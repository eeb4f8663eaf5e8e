"""What every method's phantom evaluation shares: one measurement through the real stage,
tap jitter for repeatability, and the runner that maps the cases over the cores and writes
the report, the card's ``accuracy`` section and the CARD.md made from it."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from multiprocessing import Pool
from pathlib import Path

from edgeosteo.config import MeasurementSettings
from edgeosteo.measurement import MeasurementRequest
from edgeosteo.methods import MethodRegistry, measure

REPO = Path(__file__).resolve().parents[2]
MODELS = REPO / "models"


def run_method(
    method: str,
    radiograph,
    taps: Sequence[Sequence[float]],
    body_part: str,
    view: str | None,
    settings: MeasurementSettings | None = None,
):
    """The method's result (a Measurement or a MeasurementRefusal) for ``taps`` on
    ``radiograph``, through the same stage a screening uses."""
    request = MeasurementRequest(method, tuple(tuple(map(float, p)) for p in taps))
    return measure(
        request,
        radiograph,
        True,
        body_part,
        view,
        MethodRegistry(MODELS),
        settings or MeasurementSettings(),
    )


def jitter(taps, rng, px: float):
    """The taps moved by up to ``px`` in x and y, as a second reader's would be."""
    return tuple((x + rng.uniform(-px, px), y + rng.uniform(-px, px)) for x, y in taps)


def run_and_write(
    method: str,
    stages: Mapping[str, tuple[Callable[[int], dict], Iterable[int]]],
    summarise: Callable[..., dict],
    write_card_md: Callable[[dict], str],
    headline: Sequence[str] = ("accuracy", "repeatability", "refusal"),
) -> dict:
    """Runs each stage's case function over its seeds (two processes), summarises them in
    the stages' order, and writes ``tools/reports/<method>.json`` (the summary and every
    case), the card's ``accuracy`` section and ``models/<method>/CARD.md``."""
    with Pool(2) as pool:
        results = {name: pool.map(case, list(seeds)) for name, (case, seeds) in stages.items()}
    summary = summarise(*results.values())
    report = REPO / "tools" / "reports" / f"{method}.json"
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text(json.dumps({**summary, **results}, indent=1))
    card_path = MODELS / method / "method.json"
    card = json.loads(card_path.read_text(encoding="utf-8"))
    card["accuracy"] = summary
    card_path.write_text(json.dumps(card, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    (MODELS / method / "CARD.md").write_text(write_card_md(summary), encoding="utf-8")
    print(json.dumps({k: summary[k] for k in headline}, indent=1))
    return summary
