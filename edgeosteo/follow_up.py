"""Recording a case's DXA result: the one path the page, the API (through
edgeosteo.cases.CaseWorkflow) and the hub's deliveries (through edgeosteo.sync) take. The
fields are checked by edgeosteo.dxa; a case that does not exist or has a result already is
refused with a FollowUpError and nothing changes."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date

from edgeosteo.config import FollowUpSettings
from edgeosteo.dxa import CONSENT_FIELD, dxa_result_from, research_consent
from edgeosteo.errors import FollowUpError
from edgeosteo.store import CaseStore, OutcomeExists, ReferralOutcome


def record_dxa(
    store: CaseStore,
    case_id: int,
    fields: Mapping[str, object],
    settings: FollowUpSettings,
    recorded_by: str | None,
    today: date,
    from_form: bool = False,
) -> ReferralOutcome:
    """Record a case's DXA result, which closes its referral, with the patient's research
    consent when the fields give one."""
    if store.get_case(case_id) is None:
        raise FollowUpError("dxa.case_not_found", f"case {case_id}")
    dxa = dxa_result_from(fields, settings, today, from_form)
    consent = research_consent(fields.get(CONSENT_FIELD))
    try:
        outcome = store.record_dxa(case_id, dxa, recorded_by, consent)
    except OutcomeExists:
        raise FollowUpError("dxa.duplicate", f"case {case_id}") from None
    if outcome is None:  # removed in between: there is no removal, but say so plainly
        raise FollowUpError("dxa.case_not_found", f"case {case_id}")
    return outcome
