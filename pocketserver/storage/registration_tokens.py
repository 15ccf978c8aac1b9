"""Registration tokens that let invited people sign up.

Spec: client-server-api, "Token-authenticated registration".
"""
from __future__ import annotations

from typing import NamedTuple

from pocketserver.storage.database import Database
from pocketserver.storage.writer import Transaction


class RegistrationToken(NamedTuple):
    token: str
    uses_allowed: int | None
    completed: int
    expiry_ts: int | None
    created_ts: int

    def usable(self, now_ms: int) -> bool:
        if self.expiry_ts is not None and self.expiry_ts <= now_ms:
            return False
        return self.uses_allowed is None or self.completed < self.uses_allowed


_COLUMNS = "token, uses_allowed, completed, expiry_ts, created_ts"


async def get_registration_token(db: Database, token: str) -> RegistrationToken | None:
    row = await db.fetchone(f"SELECT {_COLUMNS} FROM registration_tokens WHERE token = ?", (token,))
    return RegistrationToken(*row) if row else None


async def get_registration_token_tx(tx: Transaction, token: str) -> RegistrationToken | None:
    row = await tx.fetchone(f"SELECT {_COLUMNS} FROM registration_tokens WHERE token = ?", (token,))
    return RegistrationToken(*row) if row else None


async def list_registration_tokens(db: Database) -> list[RegistrationToken]:
    rows = await db.fetchall(f"SELECT {_COLUMNS} FROM registration_tokens ORDER BY created_ts")
    return [RegistrationToken(*r) for r in rows]


async def insert_registration_token(tx: Transaction, token: str, uses_allowed: int | None,
                                    expiry_ts: int | None, now_ms: int) -> None:
    await tx.execute("INSERT INTO registration_tokens (token, uses_allowed, expiry_ts, created_ts) "
                     "VALUES (?, ?, ?, ?)", (token, uses_allowed, expiry_ts, now_ms))


async def delete_registration_token(tx: Transaction, token: str) -> bool:
    cur = await tx.execute("DELETE FROM registration_tokens WHERE token = ?", (token,))
    return cur.rowcount > 0


async def use_registration_token(tx: Transaction, token: str, now_ms: int) -> bool:
    """Count one completed registration against `token`, if it is still usable."""
    cur = await tx.execute(
        "UPDATE registration_tokens SET completed = completed + 1 WHERE token = ? "
        "AND (expiry_ts IS NULL OR expiry_ts > ?) "
        "AND (uses_allowed IS NULL OR completed < uses_allowed)", (token, now_ms))
    return cur.rowcount > 0
