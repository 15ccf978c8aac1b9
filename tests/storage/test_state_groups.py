"""State groups: deltas over snapshots reproduce the full state at every point."""
from __future__ import annotations

from pathlib import Path

from pocketserver.storage import state as state_store
from pocketserver.storage.database import Database


async def test_delta_chains_reproduce_full_state(tmp_path: Path) -> None:
    db = Database(tmp_path / "s.db")
    await db.open()
    try:
        expected: list[dict] = []
        full: dict = {}
        group, chain = None, 0
        groups = []
        for i in range(state_store.MAX_CHAIN_LENGTH * 2 + 5):
            key = ("m.room.member", f"@u{i % 40}:x")   # some keys change more than once
            full = {**full, key: f"$e{i}"}

            async def job(tx, key=key, full=dict(full), group=group, chain=chain):
                return await state_store.insert_state_group(tx, "!r:x", group, chain, {key: full[key]}, full)

            group, chain = await db.write(job)
            groups.append(group)
            expected.append(dict(full))
            assert chain <= state_store.MAX_CHAIN_LENGTH
        async with db.reader() as conn:
            for group_id, state in zip(groups, expected):
                assert await state_store.load_state_group(conn, group_id) == state
            # Many groups in one statement: each the same full state, chains crossing snapshots.
            assert await state_store.load_state_groups(conn, groups[::3]) == dict(zip(groups[::3], expected[::3]))
        rows = await db.fetchall("SELECT COUNT(*) FROM state_group_entries")
        # Deltas keep storage far below one full copy per group.
        assert rows[0][0] < sum(len(s) for s in expected) / 4
    finally:
        await db.close()
