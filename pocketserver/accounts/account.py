"""Managing an account: password, deactivation and devices.

Spec: client-server-api, "Account registration and management", "Device management".
"""
from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from pocketserver.accounts.auth import Authenticator, Requester
from pocketserver.accounts.passwords import PasswordHasher
from pocketserver.accounts.sessions import Sessions, check_password_field
from pocketserver.accounts.uia import UserInteractiveAuth
from pocketserver.e2ee.device_lists import record_device_list_change
from pocketserver.errors import BadJson, Forbidden, MissingParam, NotFound, WeakPassword
from pocketserver.storage import accounts as store
from pocketserver.storage import profiles
from pocketserver.storage.database import Database
from pocketserver.storage.writer import Transaction

PASSWORD_STAGE = "m.login.password"
MAX_DEVICES_PER_REQUEST = 1000


class Account:
    """Changes to an existing account, guarded by user-interactive auth."""

    def __init__(self, db: Database, hasher: PasswordHasher, sessions: Sessions,
                 uia: UserInteractiveAuth, auth: Authenticator) -> None:
        self._db = db
        self._hasher = hasher
        self._sessions = sessions
        self._deactivation_listeners: list[Callable[[str], Awaitable[None]]] = []
        self._uia = uia
        self._auth = auth

    async def confirm_identity(self, requester: Requester, auth: Any, operation: str) -> None:
        """Require the requester's password through UIA before a sensitive operation."""
        async def check(stage: str, given: Mapping[str, Any]) -> bool:
            user_id = self._sessions.resolve_user(given.get("identifier"), given.get("user"))
            if user_id != requester.user_id:
                raise Forbidden("You can only authenticate as yourself")
            password = given.get("password")
            if not isinstance(password, str):
                raise BadJson("password must be a string")
            await self._sessions.check_password(user_id, password)
            return True

        await self._uia.authenticate(auth, [[PASSWORD_STAGE]], check, operation=operation,
                                     user_id=requester.user_id)

    async def change_password(self, requester: Requester, body: Mapping[str, Any]) -> None:
        """Spec: client-server-api, "POST /_matrix/client/v3/account/password"."""
        new_password = body.get("new_password")
        if new_password is None:
            # Clients start the UIA flow first; the password is only needed once it completes.
            await self.confirm_identity(requester, body.get("auth"), "password")
            raise MissingParam("Missing new_password")
        check_password_field(new_password)
        if not new_password:
            raise WeakPassword("new_password must not be empty")
        logout_devices = body.get("logout_devices", True)
        if not isinstance(logout_devices, bool):
            raise BadJson("logout_devices must be a boolean")
        await self.confirm_identity(requester, body.get("auth"), "password")
        password_hash = await self._hasher.hash(new_password)

        async def job(tx: Transaction) -> None:
            await store.set_password_hash(tx, requester.user_id, password_hash)
            if logout_devices:
                others = [d for d in await store.list_device_ids_tx(tx, requester.user_id)
                          if d != requester.device_id]
                await self._sessions.delete_devices(tx, requester.user_id, others)

        await self._db.write(job)

    async def deactivate(self, requester: Requester, body: Mapping[str, Any]) -> None:
        """Spec: client-server-api, "POST /_matrix/client/v3/account/deactivate"."""
        erase = body.get("erase", False)
        if not isinstance(erase, bool):
            raise BadJson("erase must be a boolean")
        await self.confirm_identity(requester, body.get("auth"), "deactivate")
        await self.deactivate_user(requester.user_id, erase=erase)

    def add_deactivation_listener(self, listener: Callable[[str], Awaitable[None]]) -> None:
        """Call `listener(user_id)` after a deactivation is committed (to leave rooms)."""
        self._deactivation_listeners.append(listener)

    async def deactivate_user(self, user_id: str, *, erase: bool, leave_rooms: bool = True) -> None:
        """Deactivate an account (its own request or an admin's), then run the listeners (which
        take it out of its rooms). Without `leave_rooms`, the running server does that part
        (finish_deactivations): the command line while the server holds the data directory."""
        async def job(tx: Transaction) -> None:
            await self._sessions.delete_devices(tx, user_id, await store.list_device_ids_tx(tx, user_id))
            await store.deactivate_user(tx, user_id)
            if erase:
                await profiles.delete_profile(tx, user_id)
            tx.changes.users.add(user_id)

        await self._db.write(job)
        if leave_rooms:
            for listener in self._deactivation_listeners:
                await listener(user_id)

    async def finish_deactivations(self) -> None:
        """Run the listeners for the deactivated accounts still in rooms."""
        for user_id in await store.deactivated_users_in_rooms(self._db):
            for listener in self._deactivation_listeners:
                await listener(user_id)

    async def list_devices(self, user_id: str) -> list[dict[str, Any]]:
        """Spec: client-server-api, "GET /_matrix/client/v3/devices"."""
        return [self._device_body(user_id, d) for d in await store.list_devices(self._db, user_id)]

    async def whois(self, requester: Requester, user_id: str) -> dict[str, Any]:
        """A user's devices with where and when each was last seen; for the user and for admins.

        One session per device, as an access token here belongs to one device. Spec:
        client-server-api, "GET /_matrix/client/v3/admin/whois/{userId}".
        """
        if requester.user_id != user_id:
            caller = await store.get_user(self._db, requester.user_id)
            if caller is None or not caller.admin:
                raise Forbidden("You are not a server admin")
        if await store.get_user(self._db, user_id) is None:
            raise NotFound("Unknown user")
        devices: dict[str, Any] = {}
        for device in await self.list_devices(user_id):
            connection = {k: v for k, v in (("ip", device["last_seen_ip"]),
                                            ("last_seen", device["last_seen_ts"])) if v is not None}
            devices[device["device_id"]] = {"sessions": [{"connections": [connection] if connection else []}]}
        return {"user_id": user_id, "devices": devices}

    async def get_device(self, user_id: str, device_id: str) -> dict[str, Any]:
        device = await store.get_device(self._db, user_id, device_id)
        if device is None:
            raise NotFound("Device not found")
        return self._device_body(user_id, device)

    def _device_body(self, user_id: str, device: store.DeviceRow) -> dict[str, Any]:
        """A device as Synapse shows it: absent values are null rather than missing."""
        recent = self._auth.last_seen(user_id, device.device_id)
        ip, ts = recent if recent else (device.last_seen_ip, device.last_seen_ts)
        return {"device_id": device.device_id, "user_id": user_id,
                "display_name": device.display_name, "last_seen_ip": ip or None, "last_seen_ts": ts}

    async def update_device(self, user_id: str, device_id: str, body: Mapping[str, Any]) -> None:
        """Spec: client-server-api, "PUT /_matrix/client/v3/devices/{deviceId}"."""
        name = body.get("display_name")
        if name is None:
            if await store.get_device(self._db, user_id, device_id) is None:
                raise NotFound("Device not found")
            return
        if not isinstance(name, str) or len(name) > 512:
            raise BadJson("display_name must be a string of at most 512 characters")
        async def job(tx: Transaction) -> bool:
            if not await store.set_device_display_name(tx, user_id, device_id, name):
                return False
            await record_device_list_change(tx, user_id)   # other users' clients show device names
            return True

        if not await self._db.write(job):
            raise NotFound("Device not found")

    async def delete_devices(self, requester: Requester, device_ids: Any, auth: Any) -> None:
        """Delete devices after UIA; unknown device IDs are ignored, as the spec allows.

        Spec: client-server-api, "POST /_matrix/client/v3/delete_devices".
        """
        if (not isinstance(device_ids, list) or len(device_ids) > MAX_DEVICES_PER_REQUEST
                or not all(isinstance(d, str) for d in device_ids)):
            raise BadJson("devices must be a list of device IDs")
        await self.confirm_identity(requester, auth, "delete_devices")
        await self._db.write(lambda tx: self._sessions.delete_devices(tx, requester.user_id, device_ids))

    async def delete_device(self, requester: Requester, device_id: str, auth: Any) -> None:
        """Spec: client-server-api, "DELETE /_matrix/client/v3/devices/{deviceId}"."""
        if await store.get_device(self._db, requester.user_id, device_id) is None:
            raise NotFound("Device not found")
        await self.confirm_identity(requester, auth, f"delete_device/{device_id}")   # its session, that device's
        await self._db.write(lambda tx: self._sessions.delete_devices(tx, requester.user_id, [device_id]))
