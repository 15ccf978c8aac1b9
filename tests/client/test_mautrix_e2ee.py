"""An encrypting bot on mautrix-python (maubot's library, with python-olm) answers a matrix-nio user
(vodozemac) in an encrypted room, through a real server on loopback.

The bot uploads its device and one-time keys with mautrix's OlmMachine, joins when invited, takes
the user's room key from an Olm to-device message, decrypts the user's message, then queries the
user's devices, claims a one-time key, shares its own room key and answers encrypted; the user
decrypts the answer. Spec: client-server-api, "End-to-End Encryption", "Send-to-Device messaging".
"""
from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("olm", reason="mautrix's encryption needs python-olm (wheels for Linux x86_64 and aarch64)")

from mautrix.client import Client  # noqa: E402
from mautrix.client.state_store import MemoryStateStore, MemorySyncStore  # noqa: E402
from mautrix.crypto import OlmMachine  # noqa: E402
from mautrix.crypto.store import MemoryCryptoStore, StateStore as CryptoStateStore  # noqa: E402
from mautrix.types import (EventType, Membership, MessageEvent, MessageType, RoomID, StateEvent,  # noqa: E402
                           TextMessageEventContent, UserID)
from nio import RoomCreateResponse  # noqa: E402

from tests.client.test_e2ee_nio import ENCRYPTION, login as nio_login, sync as nio_sync, texts_until  # noqa: E402


class BotStateStore(MemoryStateStore, CryptoStateStore):
    """mautrix's in-memory state store, with the one question its OlmMachine adds."""

    async def find_shared_rooms(self, user_id: UserID) -> list[RoomID]:
        return [room_id for room_id, members in self.members.items()
                if (m := members.get(user_id)) is not None and m.membership == Membership.JOIN
                and await self.is_encrypted(room_id)]


class Warnings(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(f"{record.name}: {record.getMessage()}")


async def start_bot(homeserver: Any, http: Any) -> Client:
    body = await homeserver.register_shared_secret(http, "echo-bot", "pw-bot")
    state = BotStateStore()
    bot = Client(mxid=UserID(body["user_id"]), base_url=homeserver.base_url, state_store=state,
                 sync_store=MemorySyncStore())
    await bot.login(password="pw-bot", device_name="echo bot")
    keys = MemoryCryptoStore(account_id=bot.mxid, pickle_key="not secret in a test")
    await keys.put_device_id(bot.device_id)
    machine = OlmMachine(bot, keys, state)
    await machine.load()
    bot.crypto = machine
    await machine.share_keys()      # device keys and one-time keys

    async def on_invite(evt: StateEvent) -> None:
        if evt.state_key == bot.mxid and evt.content.membership == Membership.INVITE:
            await bot.join_room(evt.room_id)

    async def on_message(evt: MessageEvent) -> None:
        if evt.sender != bot.mxid and evt.content.msgtype == MessageType.TEXT:
            await bot.send_message(evt.room_id, TextMessageEventContent(msgtype=MessageType.TEXT,
                                                                        body=f"echo: {evt.content.body}"))

    bot.add_event_handler(EventType.ROOM_MEMBER, on_invite)
    bot.add_event_handler(EventType.ROOM_MESSAGE, on_message)
    bot.start(None)
    return bot


async def test_an_encrypting_mautrix_bot_answers_a_nio_user(homeserver, http, tmp_path: Path) -> None:
    warnings = Warnings()
    logging.getLogger("mau").addHandler(warnings)
    alice = await nio_login(homeserver, http, "crypto-alice", tmp_path / "alice")
    phones: list[Any] = []
    bot = await start_bot(homeserver, http)
    try:
        uploaded = await bot.api.request("POST", "/_matrix/client/v3/keys/query",
                                         {"device_keys": {bot.mxid: [bot.device_id]}})
        assert bot.device_id in uploaded["device_keys"][bot.mxid]
        await nio_sync(alice)
        created = await alice.room_create(name="Bot room", invite=[bot.mxid], initial_state=[ENCRYPTION])
        assert isinstance(created, RoomCreateResponse), created
        room_id = created.room_id
        async with asyncio.timeout(15):
            while room_id not in alice.rooms or bot.mxid not in alice.rooms[room_id].users:
                await nio_sync(alice, 1_000)
        assert alice.rooms[room_id].encrypted

        sent = await alice.room_send(room_id, "m.room.message", {"msgtype": "m.text", "body": "ping"},
                                     ignore_unverified_devices=True)
        assert getattr(sent, "event_id", None), sent
        events = await texts_until(alice, room_id, "echo: ping")
        answer = next(e for e in events if getattr(e, "body", None) == "echo: ping")
        assert answer.decrypted and answer.sender == bot.mxid
        # What the bot sent is encrypted on the server: its messages are m.room.encrypted events.
        async with http.get(f"{homeserver.base_url}/_matrix/client/v3/rooms/{room_id}/messages",
                            params={"dir": "b", "limit": "50"},
                            headers={"Authorization": f"Bearer {alice.access_token}"}) as resp:
            assert resp.status == 200
            chunk = (await resp.json())["chunk"]
        assert [e["type"] for e in chunk if e["sender"] == bot.mxid and "state_key" not in e] == ["m.room.encrypted"]

        # alice signs in on a phone and sends from her laptop again: the bot has heard from the
        # phone only through device_lists.changed, and shares its next room key with it too.
        phone = await nio_login(homeserver, http, "crypto-alice", tmp_path / "phone", register=False)
        phones.append(phone)
        await nio_sync(phone)
        sent = await alice.room_send(room_id, "m.room.message", {"msgtype": "m.text", "body": "again"},
                                     ignore_unverified_devices=True)
        assert getattr(sent, "event_id", None), sent
        events = await texts_until(phone, room_id, "echo: again")
        assert next(e for e in events if getattr(e, "body", None) == "echo: again").decrypted
        # Only notes that nobody cross-signed (neither side set it up); nothing mautrix could not read.
        assert warnings.messages and all("cross-sign" in m for m in warnings.messages), warnings.messages
    finally:
        logging.getLogger("mau").removeHandler(warnings)
        bot.stop()
        if bot.syncing_task is not None:
            await asyncio.wait([bot.syncing_task])
        await bot.api.session.close()
        for client in [alice, *phones]:
            await client.close()
