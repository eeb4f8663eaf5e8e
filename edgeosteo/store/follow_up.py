"""Referral follow-through: a case's DXA result or why there is none, the list of referrals
still waiting, the patient's research consent, and the cases a labelled export takes."""

from __future__ import annotations

import dataclasses
import sqlite3

from edgeosteo.records import CaseRecord, DxaResult, OutcomeExists, ReferralOutcome
from edgeosteo.store.cases import _case, revise_outbox
from edgeosteo.store.db import SQLITE_MAX_INTEGER, Database, utc_now

DXA_COLUMNS = tuple(f.name for f in dataclasses.fields(DxaResult))


class FollowUps(Database):
    """Referral outcomes and research consent."""

    def record_dxa(
        self,
        case_id: int,
        dxa: DxaResult,
        recorded_by: str | None,
        research_consent: str | None = None,
    ) -> ReferralOutcome | None:
        """Store a case's DXA result, which closes its referral (a declined or could-not-
        travel outcome is replaced: the patient went after all), and the research consent
        when one is given, in one transaction. None when there is no such case;
        OutcomeExists when it has a DXA result already (nothing changes)."""
        if not 0 <= case_id <= SQLITE_MAX_INTEGER:
            return None
        values = [getattr(dxa, name) for name in DXA_COLUMNS]
        with self.transaction() as connection:
            if connection.execute("SELECT 1 FROM cases WHERE id=?", (case_id,)).fetchone() is None:
                return None
            before = connection.execute(
                "SELECT outcome FROM referral_outcomes WHERE case_id=?", (case_id,)
            ).fetchone()
            if before is not None and before["outcome"] == "dxa_done":
                raise OutcomeExists(case_id)
            connection.execute(
                f"""INSERT OR REPLACE INTO referral_outcomes (case_id, outcome, recorded_at,
                    recorded_by, {", ".join(DXA_COLUMNS)}, lowest_t_score)
                    VALUES (?,?,?,?,{",".join("?" * len(DXA_COLUMNS))},?)""",
                (case_id, "dxa_done", utc_now(), recorded_by, *values, dxa.lowest_t_score),
            )
            if research_consent is not None:
                connection.execute(
                    "UPDATE cases SET research_consent=? WHERE id=?", (research_consent, case_id)
                )
            revise_outbox(connection, case_id)  # the hub hears of the result
        return self.get_outcome(case_id)

    def record_no_dxa(
        self, case_id: int, outcome: str, recorded_by: str | None
    ) -> ReferralOutcome | None:
        """The patient declined or could not travel: the referral leaves the follow-up list
        without a result. None when there is no such case; OutcomeExists when it has a DXA
        result (a result is never overwritten by a refusal)."""
        if not 0 <= case_id <= SQLITE_MAX_INTEGER:
            return None
        with self.transaction() as connection:
            if connection.execute("SELECT 1 FROM cases WHERE id=?", (case_id,)).fetchone() is None:
                return None
            before = connection.execute(
                "SELECT outcome FROM referral_outcomes WHERE case_id=?", (case_id,)
            ).fetchone()
            if before is not None and before["outcome"] == "dxa_done":
                raise OutcomeExists(case_id)
            connection.execute(
                """INSERT OR REPLACE INTO referral_outcomes (case_id, outcome, recorded_at,
                   recorded_by) VALUES (?,?,?,?)""",
                (case_id, outcome, utc_now(), recorded_by),
            )
            if before is None or before["outcome"] != outcome:
                revise_outbox(connection, case_id)
        return self.get_outcome(case_id)

    def set_research_consent(self, case_id: int, answer: str | None) -> bool:
        """The patient's answer to research use ("yes", "no", None: not asked); False when
        there is no such case."""
        if not 0 <= case_id <= SQLITE_MAX_INTEGER:
            return False
        with self.transaction() as connection:
            cursor = connection.execute(
                "UPDATE cases SET research_consent=? WHERE id=?", (answer, case_id)
            )
        return cursor.rowcount == 1

    def get_outcome(self, case_id: int) -> ReferralOutcome | None:
        if not 0 <= case_id <= SQLITE_MAX_INTEGER:
            return None
        with self.connect() as connection:
            row = connection.execute(
                "SELECT * FROM referral_outcomes WHERE case_id=?", (case_id,)
            ).fetchone()
        return _outcome(row) if row else None

    def awaiting_dxa(self, categories: tuple[str, ...], limit: int = 500) -> list[CaseRecord]:
        """Cases referred in one of ``categories`` with no outcome yet, oldest first."""
        if not categories:
            return []
        marks = ",".join("?" * len(categories))
        with self.connect() as connection:
            rows = connection.execute(
                f"""SELECT cases.* FROM cases LEFT JOIN referral_outcomes o ON o.case_id = cases.id
                    WHERE cases.category IN ({marks}) AND o.case_id IS NULL
                    ORDER BY cases.created_at, cases.id LIMIT ?""",
                (*categories, limit),
            ).fetchall()
        return [_case(row) for row in rows]

    def labelled_cases(self, since: str | None = None) -> list[tuple[CaseRecord, ReferralOutcome]]:
        """Every case with a DXA result (recorded on or after ``since``, YYYY-MM-DD), in the
        order the results were recorded; consent is the caller's to honour."""
        clause, params = "", ()
        if since:
            clause, params = "AND substr(o.recorded_at, 1, 10) >= ?", (since,)
        with self.connect() as connection:
            outcomes = connection.execute(
                f"""SELECT o.* FROM referral_outcomes o
                    WHERE o.outcome = 'dxa_done' {clause} ORDER BY o.recorded_at, o.case_id""",
                params,
            ).fetchall()
            cases = {
                row["id"]: _case(row)
                for row in connection.execute(
                    f"""SELECT cases.* FROM cases JOIN referral_outcomes o ON o.case_id = cases.id
                        WHERE o.outcome = 'dxa_done' {clause}""",
                    params,
                )
            }
        return [(cases[row["case_id"]], _outcome(row)) for row in outcomes]


def _outcome(row: sqlite3.Row) -> ReferralOutcome:
    dxa = None
    if row["outcome"] == "dxa_done":
        dxa = DxaResult(**{name: row[name] for name in DXA_COLUMNS})
    return ReferralOutcome(
        case_id=row["case_id"],
        outcome=row["outcome"],
        recorded_at=row["recorded_at"],
        recorded_by=row["recorded_by"],
        dxa=dxa,
    )
