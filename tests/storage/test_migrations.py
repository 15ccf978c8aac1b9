"""Schema migrations: applied in order, atomic, and a newer database is refused."""
from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from pocketserver.storage import database
from pocketserver.storage.database import SCHEMA_VERSION, DatabaseError, migrate


def version_and_tables(path: Path) -> tuple[int, set[str]]:
    """The schema version and the table names of a database file."""
    conn = sqlite3.connect(path)
    try:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        return version, {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    finally:
        conn.close()


def upgrade_from(path: Path, version: int, monkeypatch, *statements: str) -> None:
    """Make a database at schema `version`, run `statements` on it, then apply the later migrations."""
    every = database._migrations()
    monkeypatch.setattr(database, "_migrations", lambda: [m for m in every if m[0] <= version])
    assert migrate(path) == version
    conn = sqlite3.connect(path)
    for statement in statements:
        conn.execute(statement)
    conn.commit()
    conn.close()
    monkeypatch.setattr(database, "_migrations", lambda: every)
    assert migrate(path) == SCHEMA_VERSION


def test_fresh_database_gets_latest_schema(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite"
    assert migrate(path) == SCHEMA_VERSION
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"users", "devices", "access_tokens", "account_data"} <= tables
    conn.close()
    assert migrate(path) == SCHEMA_VERSION   # idempotent


@pytest.mark.parametrize("open_database", [migrate, database._connect_writer], ids=["migrate", "writer"])
def test_newer_database_is_refused(tmp_path: Path, open_database) -> None:
    """Both ways in refuse it: the offline commands' migrate() and the server's write connection."""
    path = tmp_path / "db.sqlite"
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(DatabaseError, match="newer pocketserver"):
        open_database(path)


def test_failed_migration_leaves_database_unchanged(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "db.sqlite"
    migrate(path)
    broken = [*database._migrations(),
              (SCHEMA_VERSION + 1, "9999_broken.sql",
               "CREATE TABLE half_done (x INTEGER);\nTHIS IS NOT SQL;\n")]
    monkeypatch.setattr(database, "_migrations", lambda: broken)
    monkeypatch.setattr(database, "SCHEMA_VERSION", SCHEMA_VERSION + 1)
    with pytest.raises(DatabaseError, match="rolled back"):
        migrate(path)
    version, tables = version_and_tables(path)
    assert version == SCHEMA_VERSION and "half_done" not in tables


def test_failed_migration_rolls_back_every_pending_one(tmp_path: Path, monkeypatch) -> None:
    """Pending migrations run in one transaction: none of them is left applied."""
    path = tmp_path / "db.sqlite"
    migrate(path)
    pending = [*database._migrations(),
               (SCHEMA_VERSION + 1, "9998_fine.sql", "CREATE TABLE fine (x INTEGER);\n"),
               (SCHEMA_VERSION + 2, "9999_broken.sql", "THIS IS NOT SQL;\n")]
    monkeypatch.setattr(database, "_migrations", lambda: pending)
    monkeypatch.setattr(database, "SCHEMA_VERSION", SCHEMA_VERSION + 2)
    with pytest.raises(DatabaseError, match="9999_broken.sql failed and was rolled back"):
        migrate(path)
    version, tables = version_and_tables(path)
    assert version == SCHEMA_VERSION and "fine" not in tables


def test_receipts_and_read_positions_are_stored_by_their_key(tmp_path: Path, monkeypatch) -> None:
    """Migration 0010 keeps every receipt and read position, and drops their separate key indexes."""
    path = tmp_path / "db.sqlite"
    upgrade_from(path, 9, monkeypatch,
                 "INSERT INTO receipts VALUES ('!r:hs', 'm.read', '@a:hs', '', '$e', 7, '{\"ts\": 1}', 3)",
                 "INSERT INTO push_read_positions VALUES ('@a:hs', '!r:hs', '', 7)")
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("SELECT * FROM receipts").fetchall() == [
            ("!r:hs", "m.read", "@a:hs", "", "$e", 7, '{"ts": 1}', 3)]
        assert conn.execute("SELECT * FROM push_read_positions").fetchall() == [("@a:hs", "!r:hs", "", 7)]
        indexes = {r[0] for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name IN ('receipts', 'push_read_positions')")}
        assert indexes == {"receipts_stream"}
        with pytest.raises(sqlite3.IntegrityError):   # the key is still unique
            conn.execute("INSERT INTO push_read_positions VALUES ('@a:hs', '!r:hs', '', 9)")
    finally:
        conn.close()


def test_existing_accounts_are_neither_locked_nor_suspended(tmp_path: Path, monkeypatch) -> None:
    """Migration 0011 adds the moderation flags, off for every account there is."""
    path = tmp_path / "db.sqlite"
    upgrade_from(path, 10, monkeypatch, "INSERT INTO users (user_id, admin, created_ts) VALUES ('@a:hs', 0, 1)")
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("SELECT user_id, locked, suspended FROM users").fetchall() == [("@a:hs", 0, 0)]
    finally:
        conn.close()


def test_device_list_streams_keep_only_the_latest_rows(tmp_path: Path, monkeypatch) -> None:
    """Migration 0012 drops the device-list rows a later row of the same user (or the same
    observer, subject and kind) supersedes, twins at one position too; one row each stays."""
    path = tmp_path / "db.sqlite"
    changes = [(1, "@a:hs"), (2, "@b:hs"), (3, "@a:hs"), (5, "@a:hs")]
    observations = [(1, "@a:hs", "@b:hs", "changed"), (2, "@a:hs", "@b:hs", "left"), (3, "@a:hs", "@b:hs", "changed"),
                    (3, "@a:hs", "@b:hs", "changed"), (3, "@b:hs", "@a:hs", "changed"), (4, "@a:hs", "@c:hs", "changed")]
    upgrade_from(path, 11, monkeypatch,
                 *(f"INSERT INTO device_list_changes VALUES ({p}, '{u}')" for p, u in changes),
                 *(f"INSERT INTO device_list_observations VALUES ({p}, '{o}', '{s}', '{k}')" for p, o, s, k in observations))
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("SELECT * FROM device_list_changes ORDER BY position").fetchall() == [(2, "@b:hs"), (5, "@a:hs")]
        assert conn.execute("SELECT * FROM device_list_observations ORDER BY position, observer").fetchall() == [
            (2, "@a:hs", "@b:hs", "left"), (3, "@a:hs", "@b:hs", "changed"), (3, "@b:hs", "@a:hs", "changed"),
            (4, "@a:hs", "@c:hs", "changed")]
    finally:
        conn.close()


def test_a_database_in_use_records_the_name_its_users_carry(tmp_path: Path, monkeypatch) -> None:
    """Migration 0013 records the server name of a database with users, from the oldest user's ID;
    one without users gets it at its next start (storage/identity.py)."""
    path = tmp_path / "db.sqlite"
    upgrade_from(path, 12, monkeypatch,
                 "INSERT INTO users (user_id, admin, created_ts) VALUES ('@b:family.example:8448', 0, 2)",
                 "INSERT INTO users (user_id, admin, created_ts) VALUES ('@a:family.example:8448', 0, 1)")
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("SELECT server_name FROM server_identity").fetchall() == [("family.example:8448",)]
    finally:
        conn.close()
    empty = tmp_path / "empty.sqlite"
    upgrade_from(empty, 12, monkeypatch)
    conn = sqlite3.connect(empty)
    try:
        assert conn.execute("SELECT COUNT(*) FROM server_identity").fetchone()[0] == 0
    finally:
        conn.close()


def test_refresh_tokens_used_before_the_upgrade_stay_used(tmp_path: Path, monkeypatch) -> None:
    """Migration 0014: the rows of refresh tokens used under the old rules (kept only to refuse a
    replay) go, with the access tokens they issued, so the new rules (good until the successor is
    used) cannot make them good again; the current token of each chain stays."""
    path = tmp_path / "db.sqlite"
    upgrade_from(path, 13, monkeypatch,
                 "INSERT INTO users (user_id, admin, created_ts) VALUES ('@a:hs', 0, 1)",
                 "INSERT INTO devices (user_id, device_id, created_ts) VALUES ('@a:hs', 'D', 1)",
                 "INSERT INTO refresh_tokens (id, token_hash, user_id, device_id, next_token_id, created_ts) "
                 "VALUES (1, x'01', '@a:hs', 'D', 2, 1), (2, x'02', '@a:hs', 'D', 3, 2), (3, x'03', '@a:hs', 'D', NULL, 3)",
                 "INSERT INTO access_tokens (token_hash, user_id, device_id, created_ts, refresh_token_id) "
                 "VALUES (x'a1', '@a:hs', 'D', 1, 1), (x'a3', '@a:hs', 'D', 3, 3)")
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("SELECT id FROM refresh_tokens").fetchall() == [(3,)]
        assert conn.execute("SELECT refresh_token_id FROM access_tokens").fetchall() == [(3,)]
    finally:
        conn.close()


def test_the_writer_connection_opens_a_migrated_database(tmp_path: Path) -> None:
    """The migrations' own connection closes without checkpointing: their pages wait in the WAL."""
    path = tmp_path / "db.sqlite"
    conn = database._connect_writer(path)
    try:
        assert (tmp_path / "db.sqlite-wal").stat().st_size > 0
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2     # FULL
        assert isinstance(conn.execute("SELECT 1 AS one").fetchone(), sqlite3.Row)
    finally:
        conn.close()
    assert migrate(path) == SCHEMA_VERSION      # nothing left to apply
