"""push_event_actions rows: who an event notified, grouped by outcome, and rows in the older per-user form."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from pocketserver.storage import push
from pocketserver.storage.database import Database


@pytest.fixture
async def db(tmp_path: Path):
    database = Database(tmp_path / "test.db")
    await database.open()
    yield database
    await database.close()


async def test_recipients_with_one_rule_share_a_group_and_read_back_each(db: Database) -> None:
    notify = ("notify",)
    loud = ("notify", {"set_tweak": "highlight"})
    recipients = {"@a:hs": (notify, False, True), "@b:hs": (notify, False, True),
                  "@c:hs": (loud, True, True), "@invitee:hs": (notify, False, False)}
    await db.write(lambda tx: push.insert_event_push_actions(tx, 7, "!r:hs", "$e", "main", 1000, recipients))

    raw = (await db.fetchone("SELECT recipients_json FROM push_event_actions"))[0]
    assert sorted(json.loads(raw), key=str) == sorted([
        [["notify"], 0, 1, ["@a:hs", "@b:hs"]],
        [["notify", {"set_tweak": "highlight"}], 1, 1, ["@c:hs"]],
        [["notify"], 0, 0, ["@invitee:hs"]]], key=str)
    for user_id, (actions, highlight, _) in recipients.items():
        rows = await push.get_push_actions(db, user_id, before=None, limit=10, only_highlight=False)
        assert [(r.event_id, r.actions, r.highlight, r.ts) for r in rows] == [("$e", list(actions), highlight, 1000)]
    assert await push.get_push_actions(db, "@nobody:hs", before=None, limit=10, only_highlight=False) == []
    only = await push.get_push_actions(db, "@a:hs", before=None, limit=10, only_highlight=True)
    assert only == []


async def test_rows_in_the_per_user_form_still_read(db: Database) -> None:
    old = {"@a:hs": {"a": ["notify"], "h": 1, "c": 1}, "@b:hs": {"a": ["notify"], "h": 0, "c": 0}}
    await db.write(lambda tx: tx.execute(
        "INSERT INTO push_event_actions (stream_ordering, room_id, event_id, thread_id, ts, recipients_json) "
        "VALUES (3, '!r:hs', '$old', 'main', 5, ?)", (json.dumps(old),)))

    rows = await push.get_push_actions(db, "@a:hs", before=None, limit=10, only_highlight=True)
    assert [(r.event_id, r.actions, r.highlight) for r in rows] == [("$old", ["notify"], True)]
    assert push._recipient(json.dumps(old), "@b:hs") == (["notify"], False, False)
    assert push._recipient(json.dumps(old), "@c:hs") is None
