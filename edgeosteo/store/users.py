"""Users of the box's web pages: accounts, roles, login failures and lockout."""

from __future__ import annotations

import secrets
import sqlite3
import time

from edgeosteo.records import AccountAuditEntry, User
from edgeosteo.store.db import Database, row_to, utc_now

UNKNOWN_LOGIN_KEEP_S = 24 * 3600
UNKNOWN_LOGIN_MAX = 10_000


class LastAdmin(Exception):
    """The change would leave the box with no enabled administrator."""


class Users(Database):
    """Accounts and logins."""

    def create_user(
        self,
        username: str,
        role: str,
        password_hash: str,
        language: str | None = None,
        actor: str | None = None,
        must_change_password: bool = False,
    ) -> User:
        """A new account; with ``actor`` (the admin who added it) it is audited. Its session
        generation starts at random: SQLite gives a new row the id of a deleted last row, and
        a cookie of the deleted account (that id, its generation) must not fit the new one."""
        with self.transaction() as connection:
            connection.execute(
                "INSERT INTO users (username, role, password_hash, language, created_at, "
                "must_change_password, session_generation) VALUES (?,?,?,?,?,?,?)",
                (
                    username,
                    role,
                    password_hash,
                    language,
                    utc_now(),
                    int(must_change_password),
                    secrets.randbelow(2**62),
                ),
            )
            if actor is not None:
                _audit(connection, actor, "create", username, role)
        user = self.get_user(username)
        assert user is not None
        return user

    def get_user(self, username: str) -> User | None:
        with self.connect() as connection:
            row = connection.execute("SELECT * FROM users WHERE username=?", (username,)).fetchone()
        return _user(row) if row else None

    def get_user_by_id(self, user_id: int) -> User | None:
        with self.connect() as connection:
            row = connection.execute("SELECT * FROM users WHERE id=?", (user_id,)).fetchone()
        return _user(row) if row else None

    def list_users(self) -> list[User]:
        with self.connect() as connection:
            return [_user(r) for r in connection.execute("SELECT * FROM users ORDER BY id")]

    def count_users(self) -> int:
        with self.connect() as connection:
            return int(connection.execute("SELECT COUNT(*) FROM users").fetchone()[0])

    def record_login(
        self, user_id: int, success: bool, lock_after: int, lock_seconds: float
    ) -> None:
        with self.transaction() as connection:
            if success:
                connection.execute(
                    "UPDATE users SET failed_logins=0, locked_until=0 WHERE id=?", (user_id,)
                )
                return
            failures = (
                connection.execute(
                    "SELECT failed_logins FROM users WHERE id=?", (user_id,)
                ).fetchone()[0]
                + 1
            )
            locked_until = time.time() + lock_seconds if failures >= lock_after else 0
            connection.execute(
                "UPDATE users SET failed_logins=?, locked_until=? WHERE id=?",
                (failures, locked_until, user_id),
            )

    def unknown_login_locked(self, username: str) -> bool:
        """Whether failed logins for this name, which has no account, have locked it."""
        with self.connect() as connection:
            row = connection.execute(
                "SELECT locked_until FROM unknown_logins WHERE username=?", (username,)
            ).fetchone()
        return bool(row) and row[0] > time.time()

    def record_unknown_login(self, username: str, lock_after: int, lock_seconds: float) -> None:
        """Count a failed login for a name with no account the way record_login counts one
        for an account (one write transaction, the same lock), so neither the answer nor its
        time tells the two apart. Names not tried for UNKNOWN_LOGIN_KEEP_S and not locked
        are forgotten, and at most UNKNOWN_LOGIN_MAX names are kept."""
        now = time.time()
        with self.transaction() as connection:
            connection.execute(
                "DELETE FROM unknown_logins WHERE updated_at<? AND locked_until<?",
                (now - UNKNOWN_LOGIN_KEEP_S, now),
            )
            failures = (
                connection.execute(
                    "SELECT failed_logins FROM unknown_logins WHERE username=?", (username,)
                ).fetchone()
                or (0,)
            )[0] + 1
            locked_until = now + lock_seconds if failures >= lock_after else 0
            connection.execute(
                "INSERT INTO unknown_logins (username, failed_logins, locked_until, updated_at) "
                "VALUES (?,?,?,?) ON CONFLICT(username) DO UPDATE SET "
                "failed_logins=excluded.failed_logins, locked_until=excluded.locked_until, "
                "updated_at=excluded.updated_at",
                (username, failures, locked_until, now),
            )
            connection.execute(
                "DELETE FROM unknown_logins WHERE username NOT IN (SELECT username FROM "
                "unknown_logins ORDER BY updated_at DESC LIMIT ?)",
                (UNKNOWN_LOGIN_MAX,),
            )

    def set_user_language(self, user_id: int, language: str) -> None:
        with self.transaction() as connection:
            connection.execute("UPDATE users SET language=? WHERE id=?", (language, user_id))

    def set_password(self, user_id: int, password_hash: str, actor: str | None = None) -> None:
        """A new password; it also ends the user's page sessions (end_sessions). With
        ``actor`` (the user, changing their own) it is audited."""
        with self.transaction() as connection:
            connection.execute(
                "UPDATE users SET password_hash=?, session_generation=session_generation+1 "
                "WHERE id=?",
                (password_hash, user_id),
            )
            if actor is not None:
                _audit_on(connection, actor, "password_change", user_id)

    def set_must_change_password(self, user_id: int, must_change: bool) -> None:
        with self.transaction() as connection:
            connection.execute(
                "UPDATE users SET must_change_password=? WHERE id=?", (int(must_change), user_id)
            )

    def set_disabled(self, user_id: int, disabled: bool, actor: str | None = None) -> None:
        """Disable (ending the account's sessions) or enable an account; refuses with
        LastAdmin to disable the last enabled administrator. The check and the write are one
        transaction, so two admins disabling each other at once cannot both succeed. With
        ``actor`` (the admin) it is audited, in the same transaction."""
        with self.transaction() as connection:
            if disabled:
                _refuse_last_admin(connection, user_id)
            if actor is not None:
                _audit_on(connection, actor, "disable" if disabled else "enable", user_id)
            connection.execute(
                "UPDATE users SET disabled=?, session_generation=session_generation+1 WHERE id=?",
                (int(disabled), user_id),
            )

    def delete_user(self, user_id: int, actor: str | None = None) -> None:
        """Delete an account; refuses with LastAdmin to delete the last enabled admin."""
        with self.transaction() as connection:
            _refuse_last_admin(connection, user_id)
            if actor is not None:
                _audit_on(connection, actor, "delete", user_id)
            connection.execute("DELETE FROM users WHERE id=?", (user_id,))

    def set_role(self, user_id: int, role: str, actor: str | None = None) -> None:
        """Make an account an admin or a technician; refuses with LastAdmin to demote the last
        enabled administrator (the check and the write in one transaction, as set_disabled)."""
        if role not in ("admin", "technician"):
            raise ValueError(role)
        with self.transaction() as connection:
            if role != "admin":
                _refuse_last_admin(connection, user_id)
            if actor is not None:
                _audit_on(connection, actor, "role_change", user_id, role)
            connection.execute("UPDATE users SET role=? WHERE id=?", (role, user_id))

    def reset_password(self, user_id: int, password_hash: str, actor: str | None = None) -> None:
        """An admin's reset: a one-time password that must be changed at the next login. It
        ends the account's sessions and clears a lockout, so the user can log in with it."""
        with self.transaction() as connection:
            connection.execute(
                "UPDATE users SET password_hash=?, must_change_password=1, failed_logins=0, "
                "locked_until=0, session_generation=session_generation+1 WHERE id=?",
                (password_hash, user_id),
            )
            if actor is not None:
                _audit_on(connection, actor, "reset_password", user_id)

    def unlock_user(self, user_id: int, actor: str | None = None) -> None:
        """Clear a lockout after failed logins (the count starts again)."""
        with self.transaction() as connection:
            connection.execute(
                "UPDATE users SET failed_logins=0, locked_until=0 WHERE id=?", (user_id,)
            )
            if actor is not None:
                _audit_on(connection, actor, "unlock", user_id)

    def account_audit(self, limit: int = 50) -> list[AccountAuditEntry]:
        """The latest actions on accounts, newest first."""
        with self.connect() as connection:
            rows = connection.execute(
                "SELECT at, actor, action, target, role FROM account_audit "
                "ORDER BY id DESC LIMIT ?",
                (limit,),
            ).fetchall()
        return [row_to(AccountAuditEntry, row) for row in rows]

    def is_last_enabled_admin(self, user_id: int) -> bool:
        """Whether disabling, demoting or deleting this account would raise LastAdmin."""
        with self.connect() as connection:
            try:
                _refuse_last_admin(connection, user_id)
            except LastAdmin:
                return True
        return False

    def end_sessions(self, user_id: int) -> None:
        """Bump the user's session generation: every page session issued before no longer
        matches it, so it ends at its next request (logout, a disabled or reset account)."""
        with self.transaction() as connection:
            connection.execute(
                "UPDATE users SET session_generation=session_generation+1 WHERE id=?",
                (user_id,),
            )


def _user(row: sqlite3.Row) -> User:
    return row_to(User, row, disabled=bool, must_change_password=bool)


def _audit(
    connection: sqlite3.Connection, actor: str, action: str, target: str, role: str | None = None
) -> None:
    connection.execute(
        "INSERT INTO account_audit (at, actor, action, target, role) VALUES (?,?,?,?,?)",
        (utc_now(), actor, action, target, role),
    )


def _audit_on(
    connection: sqlite3.Connection, actor: str, action: str, user_id: int, role: str | None = None
) -> None:
    """Audit an action on the account ``user_id`` (its name as it is now)."""
    row = connection.execute("SELECT username FROM users WHERE id=?", (user_id,)).fetchone()
    if row is not None:
        _audit(connection, actor, action, row["username"], role)


def _refuse_last_admin(connection: sqlite3.Connection, user_id: int) -> None:
    others = connection.execute(
        "SELECT COUNT(*) FROM users WHERE role='admin' AND disabled=0 AND id<>?", (user_id,)
    ).fetchone()[0]
    target = connection.execute(
        "SELECT role, disabled FROM users WHERE id=?", (user_id,)
    ).fetchone()
    if target is not None and target["role"] == "admin" and not target["disabled"] and not others:
        raise LastAdmin(user_id)
