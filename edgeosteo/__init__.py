"""edgeosteo: offline osteoporosis screening from routine radiographs."""

from __future__ import annotations

from edgeosteo.warnings_filter import install_warning_filters

# the decoders' warnings about files intake reads anyway, ignored once for the process
install_warning_filters()

__version__ = "0.1.0"


def screen(source, patient=None, body_part=None, settings=None, capture="digital"):
    """Run the one screening path on one case; see edgeosteo.screening.Screener.
    ``capture="photo"`` is for a phone photograph of a printed film."""
    from edgeosteo.screening import screen as _screen

    return _screen(source, patient, body_part, settings, capture)


__all__ = ["__version__", "screen"]
