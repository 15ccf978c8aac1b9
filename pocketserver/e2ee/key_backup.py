"""Server-side key backups: versions with auth_data, and encrypted Megolm session keys in them.

Spec: client-server-api, "Server-side key backups" and the /room_keys endpoints.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pocketserver.errors import BadJson, InvalidParam, MatrixError, MissingParam, NotFound
from pocketserver.storage import key_backup as store
from pocketserver.storage.database import Database
from pocketserver.storage.key_backup import BackupVersion, RoomKey
from pocketserver.storage.writer import Transaction

MAX_ID_BYTES = 255


class WrongRoomKeysVersion(MatrixError):
    errcode, status = "M_WRONG_ROOM_KEYS_VERSION", 403


def is_better_room_key(new: RoomKey, old: RoomKey | None) -> bool:
    """Whether an uploaded key should replace the one already backed up for its session.

    Prefer a verified key; then the lower first_message_index (it decrypts more); then the lower
    forwarded_count. An equal key keeps the existing one.
    Spec: client-server-api, "Server-side key backups" (choosing between keys for a session).
    """
    if old is None:
        return True
    if new.is_verified != old.is_verified:
        return new.is_verified
    if new.first_message_index != old.first_message_index:
        return new.first_message_index < old.first_message_index
    return new.forwarded_count < old.forwarded_count


def parse_room_key(value: Any) -> RoomKey:
    """A KeyBackupData object. Spec: "KeyBackupData"."""
    if not isinstance(value, dict):
        raise BadJson("Key backup data must be an object")
    fmi, count = value.get("first_message_index"), value.get("forwarded_count")
    verified, data = value.get("is_verified"), value.get("session_data")
    if not isinstance(fmi, int) or not isinstance(count, int) or not _is_count(fmi) or not _is_count(count):
        raise BadJson("first_message_index and forwarded_count must be non-negative integers")
    if not isinstance(verified, bool):
        raise BadJson("is_verified must be a boolean")
    if not isinstance(data, dict):
        raise BadJson("session_data must be an object")
    return RoomKey(fmi, count, verified, data)


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**53


def parse_version(value: str | None) -> int:
    """A backup version string; one that cannot exist is simply not found (as in Synapse)."""
    if value is None or value == "":
        raise MissingParam("Missing version")
    if not (value.isascii() and value.isdigit()) or len(value) > 18:
        raise NotFound(f"Unknown backup version {value!r}")
    return int(value)


def parse_rooms(body: Mapping[str, Any]) -> list[tuple[str, str, RoomKey]]:
    """(room_id, session_id, key) rows of a PUT /room_keys/keys body."""
    rooms = body.get("rooms")
    if not isinstance(rooms, dict):
        raise BadJson("rooms must be an object")
    out = []
    for room_id, room in rooms.items():
        if not isinstance(room, dict):
            raise BadJson("Each room must be an object with sessions")
        out += [(room_id, s, k) for s, k in parse_sessions(room)]
    return out


def parse_sessions(body: Mapping[str, Any]) -> list[tuple[str, RoomKey]]:
    sessions = body.get("sessions")
    if not isinstance(sessions, dict):
        raise BadJson("sessions must be an object")
    return [(session_id, parse_room_key(key)) for session_id, key in sessions.items()]


def _check_id(value: str, name: str) -> None:
    if not value or len(value.encode()) > MAX_ID_BYTES:
        raise BadJson(f"{name} must be 1-255 bytes")


def version_body(info: BackupVersion, count: int) -> dict[str, Any]:
    return {"algorithm": info.algorithm, "auth_data": info.auth_data, "count": count,
            "etag": str(info.etag), "version": str(info.version)}


def _check_version_info(body: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    algorithm, auth_data = body.get("algorithm"), body.get("auth_data")
    if algorithm is None:
        raise MissingParam("Missing algorithm")
    if auth_data is None:
        raise MissingParam("Missing auth_data")
    if not isinstance(algorithm, str) or not algorithm or len(algorithm) > MAX_ID_BYTES:
        raise BadJson("algorithm must be a non-empty string")
    if not isinstance(auth_data, dict):
        raise BadJson("auth_data must be an object")
    return algorithm, auth_data


class KeyBackup:
    """The /room_keys endpoints' logic for one server."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def create_version(self, user_id: str, body: Mapping[str, Any]) -> dict[str, str]:
        """Spec: "POST /_matrix/client/v3/room_keys/version"."""
        algorithm, auth_data = _check_version_info(body)
        version = await self._db.write(lambda tx: store.insert_version(tx, user_id, algorithm, auth_data))
        return {"version": str(version)}

    async def get_version(self, user_id: str, version: str | None) -> dict[str, Any]:
        """Spec: "GET /_matrix/client/v3/room_keys/version" and ".../version/{version}"."""
        if version is None:
            info = await store.get_current_version(self._db, user_id)
            if info is None:
                raise NotFound("No current backup version")
        else:
            info = await store.get_version(self._db, user_id, parse_version(version))
            if info is None:
                raise NotFound(f"Unknown backup version {version!r}")
        return version_body(info, await store.count_keys(self._db, user_id, info.version))

    async def update_version(self, user_id: str, version: str, body: Mapping[str, Any]) -> None:
        """Only auth_data may change. Spec: "PUT /_matrix/client/v3/room_keys/version/{version}"."""
        number = parse_version(version)
        algorithm, auth_data = _check_version_info(body)
        if "version" in body and body["version"] != version:
            raise InvalidParam("The version in the body does not match the version in the path")

        async def job(tx: Transaction) -> None:
            info = await store.get_version_tx(tx, user_id, number)
            if info is None:
                raise NotFound(f"Unknown backup version {version!r}")
            if info.algorithm != algorithm:
                raise InvalidParam("Algorithm does not match")
            await store.set_auth_data(tx, user_id, number, auth_data)

        await self._db.write(job)

    async def delete_version(self, user_id: str, version: str) -> None:
        """Spec: "DELETE /_matrix/client/v3/room_keys/version/{version}"."""
        number = parse_version(version)
        if not await self._db.write(lambda tx: store.delete_version(tx, user_id, number)):
            raise NotFound(f"Unknown backup version {version!r}")

    async def put_keys(self, user_id: str, version: str | None, rows: list[tuple[str, str, RoomKey]]) -> dict[str, Any]:
        """Store keys in the current backup, keeping the better key of each session.

        Spec: "PUT /_matrix/client/v3/room_keys/keys" and its per-room and per-session forms.
        """
        number = parse_version(version)
        for room_id, session_id, _ in rows:
            _check_id(room_id, "room ID")
            _check_id(session_id, "session ID")

        async def job(tx: Transaction) -> dict[str, Any]:
            current = await store.get_current_version_tx(tx, user_id)
            if current is None or current.version != number:
                if current is None or await store.get_version_tx(tx, user_id, number) is None:
                    raise NotFound(f"Unknown backup version {version!r}")
                raise WrongRoomKeysVersion("Wrong backup version.", current_version=str(current.version))
            changed = False
            for room_id, session_id, key in rows:
                if is_better_room_key(key, await store.get_room_key_tx(tx, user_id, number, room_id, session_id)):
                    await store.put_room_key(tx, user_id, number, room_id, session_id, key)
                    changed = True
            etag = current.etag
            if changed:
                await store.bump_etag(tx, user_id, number)
                etag += 1
            return {"etag": str(etag), "count": await store.count_keys_tx(tx, user_id, number)}

        return await self._db.write(job)

    async def get_keys(self, user_id: str, version: str | None, room_id: str | None = None,
                       session_id: str | None = None) -> dict[str, Any]:
        """Spec: "GET /_matrix/client/v3/room_keys/keys" and its per-room and per-session forms."""
        number = parse_version(version)
        if await store.get_version(self._db, user_id, number) is None:
            raise NotFound(f"Unknown backup version {version!r}")
        rows = await store.get_room_keys(self._db, user_id, number, room_id, session_id)
        if session_id is not None:
            if not rows:
                raise NotFound("No room key found for this session")
            return rows[0][2].body()
        if room_id is not None:
            return {"sessions": {s: key.body() for _, s, key in rows}}
        rooms: dict[str, Any] = {}
        for r, s, key in rows:
            rooms.setdefault(r, {"sessions": {}})["sessions"][s] = key.body()
        return {"rooms": rooms}

    async def delete_keys(self, user_id: str, version: str | None, room_id: str | None = None,
                          session_id: str | None = None) -> dict[str, Any]:
        """Spec: "DELETE /_matrix/client/v3/room_keys/keys" and its per-room and per-session forms."""
        number = parse_version(version)

        async def job(tx: Transaction) -> dict[str, Any]:
            info = await store.get_version_tx(tx, user_id, number)
            if info is None:
                raise NotFound(f"Unknown backup version {version!r}")
            etag = info.etag
            if await store.delete_room_keys(tx, user_id, number, room_id, session_id):
                await store.bump_etag(tx, user_id, number)
                etag += 1
            return {"etag": str(etag), "count": await store.count_keys_tx(tx, user_id, number)}

        return await self._db.write(job)
