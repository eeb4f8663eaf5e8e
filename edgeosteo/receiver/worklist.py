"""How the today-list names a patient: in full, or pseudonymised for a screen others see."""

from __future__ import annotations

from collections.abc import Mapping

PSEUDONYMISED = "pseudonymised"


def initials(name: str) -> str:
    """ "WANG^XIAO MING" -> "W.X.M."; a Chinese name keeps its first character per part
    ("张^三丰" -> "张三")."""
    letters = []
    for part in name.replace("^", " ").replace(",", " ").split():
        first = part[0]
        letters.append(first if not first.isascii() else first.upper() + ".")
    return "".join(letters)


def patient_label(
    identity: Mapping[str, object],
    local_patient_id: str | None,
    mode: str,
    id_chars: int,
) -> str:
    """The patient as the worklist shows them. Pseudonymised: initials and the last
    ``id_chars`` characters of the ID (``…1234``); full: name and ID."""
    name = str(identity.get("name") or "").strip()
    patient_id = str(local_patient_id or identity.get("patient_id") or "").strip()
    if mode != PSEUDONYMISED:
        return " · ".join(x for x in (name.replace("^", " ").strip(), patient_id) if x)
    tail = ""
    if patient_id:
        tail = patient_id if len(patient_id) <= id_chars else "…" + patient_id[-id_chars:]
    return " ".join(x for x in (initials(name) if name else "", tail) if x)
