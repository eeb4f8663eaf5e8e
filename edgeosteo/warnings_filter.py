"""Warnings the decoders give about files they read anyway: ignored, process-wide, once.

pydicom warns about every odd-but-readable header element (a UI with a stray character, a
value longer than its VR allows, implicit VR where explicit was declared), numpy warns from
inside pydicom's rescale and LUT code, the pixel-data plugins (pylibjpeg's openjpeg, libjpeg
and rle) warn about odd codestreams, and Pillow warns about corrupt EXIF and about images
between its decompression-bomb limits (intake's own size limits refuse those). Intake either
reads such a file or refuses it with a typed code, so the warnings only add noise. They were
silenced around each call with ``warnings.catch_warnings()``, which swaps the process-wide
filter list and is not thread-safe (the server reads files in receiver threads, a worker
and web threads at once): one thread's block could drop or restore another's filters.

Instead these filters are installed once, when edgeosteo is imported, and never removed.
They match on the module a warning is issued from, so the same warning raised by any other
code (edgeosteo's own, a tool's) still shows. pydicom's log records are left as they are
(the CLI turns its logger down to errors).
"""

from __future__ import annotations

import re
import warnings

# (category, module the warning is attributed to); every category from the DICOM readers,
# only the runtime and user warnings from Pillow (DecompressionBombWarning is a
# RuntimeWarning; its deprecations still show)
_IGNORED: tuple[tuple[type[Warning], str], ...] = (
    (Warning, r"pydicom(\.|$)"),
    (Warning, r"(pylibjpeg|openjpeg|libjpeg|rle)(\.|$)"),
    (UserWarning, r"PIL(\.|$)"),
    (RuntimeWarning, r"PIL(\.|$)"),
)


def _installed(category: type[Warning], module: str) -> bool:
    for action, _message, cat, mod, lineno in warnings.filters:
        pattern = mod.pattern if isinstance(mod, re.Pattern) else mod
        if (action, _message, cat, pattern, lineno) == ("ignore", None, category, module, 0):
            return True
    return False


def install_warning_filters() -> None:
    """Ignore the decoders' warnings (see the module docstring). Idempotent: a filter
    already in the list is not added again, so calling this changes nothing the second
    time (nor resets the warnings' once-per-location registries)."""
    for category, module in _IGNORED:
        if not _installed(category, module):
            warnings.filterwarnings("ignore", category=category, module=module)
