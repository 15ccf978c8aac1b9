"""Announce this homeserver on the LAN over mDNS/DNS-SD (zeroconf).

Service types. The server registers one service instance under each type in SERVICE_TYPES:
  - `_pocketserver._tcp` is the primary type: its TXT keys below are this project's own schema,
    so `pocketserver discover` browses it to list pocketservers and nothing else.
  - `_matrix._tcp` is the generic type other Matrix LAN experiments browse for; registering it
    too costs one more PTR/SRV/TXT set (the A/AAAA records are shared) and lets such tools see
    the server. Each type resolves its own name conflicts, so the two instance names can differ.

Instance name: `lan_discovery_name`, default "Pocketserver on <hostname>". When another host
already uses it, zeroconf's probing renames ours to "<name>-2", "-3", ... (allow_name_change).

Host name (SRV target): `pocketserver-<id>.local.`, where id comes from the server's public
signing key. Never the machine's own `<hostname>.local.`: that name belongs to the system's
mDNS responder (avahi, mDNSResponder), which would treat our A records as a conflict and rename
the host, and two machines with one host name would merge their addresses.

Addresses: the LAN IPv4 (and, when listening on `::`, IPv6) addresses of the selected
interfaces, without loopback and IPv6 link-local (a URL cannot carry its zone), unless
loopback is all there is. Listening on one address announces that address only. A background
task checks the addresses every REFRESH_SECONDS and re-announces when the set changed.

TXT records: txtvers, server_name, path (client API base path, "/"), base_url, version,
registration ("open" | "token" | "closed"), federation ("on" | "off").

On clean shutdown close() unregisters every instance, which sends goodbye packets (TTL 0), so
browsers drop the server at once instead of after the records' TTL.

Spec: RFC 6762 (Multicast DNS) and RFC 6763 (DNS-Based Service Discovery).
"""
from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import logging
import socket
from typing import Any, Mapping

from pocketserver import __version__
from pocketserver.config import Config

log = logging.getLogger(__name__)

PRIMARY_TYPE = "_pocketserver._tcp.local."
SERVICE_TYPES = (PRIMARY_TYPE, "_matrix._tcp.local.")
REFRESH_SECONDS = 30.0
# 63 bytes is the DNS label limit; keep room for the "-N" suffix a name conflict adds.
MAX_INSTANCE_NAME_BYTES = 58
_WILDCARDS = ("0.0.0.0", "::", "")


def instance_name(config: Config) -> str:
    """The DNS-SD instance name to announce before any conflict renaming."""
    name = config.lan_discovery_name.strip() or f"Pocketserver on {socket.gethostname().split('.')[0]}"
    encoded = name.encode("utf-8")[:MAX_INSTANCE_NAME_BYTES]
    return encoded.decode("utf-8", errors="ignore").strip() or "Pocketserver"


def _selected_adapters(config: Config) -> list[Any]:
    """The network adapters `lan_discovery_interfaces` selects (all when it is empty)."""
    import ifaddr  # a dependency of zeroconf; ~3 ms to import, so only when addresses are needed
    wanted = {w.strip() for w in config.lan_discovery_interfaces.split(",") if w.strip()}
    adapters = ifaddr.get_adapters()
    if not wanted:
        return list(adapters)
    return [a for a in adapters
            if a.name in wanted or a.nice_name in wanted or any(_ip_text(ip) in wanted for ip in a.ips)]


def _ip_text(ip: Any) -> str:
    return ip.ip if isinstance(ip.ip, str) else ip.ip[0]


def lan_addresses(config: Config) -> tuple[str, ...]:
    """The addresses to announce: LAN addresses the server listens on, sorted, IPv4 first."""
    if config.host not in _WILDCARDS:
        return (config.host,)
    want_v6 = config.host in ("::", "")
    lan: set[ipaddress.IPv4Address | ipaddress.IPv6Address] = set()
    loopback: set[ipaddress.IPv4Address | ipaddress.IPv6Address] = set()
    for adapter in _selected_adapters(config):
        for ip in adapter.ips:
            try:
                addr = ipaddress.ip_address(_ip_text(ip).split("%")[0])
            except ValueError:
                continue
            if addr.version == 6 and not want_v6:
                continue
            if addr.is_loopback:
                loopback.add(addr)
            elif not (addr.version == 6 and addr.is_link_local) and not addr.is_multicast:
                lan.add(addr)
    chosen = lan or loopback
    return tuple(str(a) for a in sorted(chosen, key=lambda a: (a.version, a.packed)))


def url_for(address: str, port: int) -> str:
    """The http URL of a server at `address`:`port`."""
    host = f"[{address}]" if ":" in address else address
    return f"http://{host}:{port}"


def client_url(config: Config, addresses: tuple[str, ...] | None = None) -> str:
    """The base URL clients on the LAN should use, without a trailing slash."""
    if config.public_baseurl:
        return config.public_baseurl.rstrip("/")
    addresses = lan_addresses(config) if addresses is None else addresses
    return url_for(addresses[0], config.port) if addresses else config.client_base_url()


def registration_mode(config: Config) -> str:
    """How people can sign up: "open", "token" or "closed"."""
    if not config.enable_registration:
        return "closed"
    return "token" if config.registration_requires_token else "open"


def txt_properties(config: Config, addresses: tuple[str, ...]) -> dict[str, str]:
    """The TXT record of the announcement (no secrets: anyone on the LAN reads it)."""
    return {
        "txtvers": "1",
        "server_name": config.server_name,
        "path": "/",
        "base_url": client_url(config, addresses),
        "version": __version__,
        "registration": registration_mode(config),
        # TODO: report "on" once federation is served and enabled; until then it is always off.
        "federation": "off",
    }


def host_name(host_id: bytes) -> str:
    """The SRV target host name, unique to this installation (see the module docstring)."""
    return f"pocketserver-{hashlib.sha256(host_id).hexdigest()[:12]}.local."


def not_announced_reason(config: Config) -> str | None:
    """Why this config announces nothing on the LAN, or None when it announces."""
    if not config.lan_discovery:
        return "LAN discovery is off (lan_discovery = false)"
    if config.host in _WILDCARDS:
        return None
    try:
        if ipaddress.ip_address(config.host).is_loopback:
            return f"not announced on the LAN: the server listens on {config.host} only"
    except ValueError:
        return "not announced on the LAN: host must be an IP address for that"
    return None


def welcome_line(config: Config) -> str:
    """The line of the startup message about LAN discovery."""
    reason = not_announced_reason(config)
    if reason:
        return f"  {reason[0].upper()}{reason[1:]}"
    return f"  On the LAN as \"{instance_name(config)}\" at {client_url(config)} (see: pocketserver discover)"


def _zeroconf_interfaces(config: Config) -> Any:
    """The interfaces argument for AsyncZeroconf: all, or the configured ones' addresses."""
    from zeroconf import InterfaceChoice
    if not config.lan_discovery_interfaces.strip():
        return InterfaceChoice.All
    chosen: list[str | int] = []
    for adapter in _selected_adapters(config):
        for ip in adapter.ips:
            if isinstance(ip.ip, str):
                chosen.append(ip.ip)
            elif config.host in ("::", "") and adapter.index is not None and adapter.index not in chosen:
                chosen.append(adapter.index)
    return chosen


class Announcer:
    """Registers the server's DNS-SD instances and keeps their addresses current."""

    def __init__(self, config: Config, host_id: bytes, refresh_seconds: float = REFRESH_SECONDS) -> None:
        self.config = config
        self.server = host_name(host_id)
        self.refresh_seconds = refresh_seconds
        self.addresses: tuple[str, ...] = ()
        self._zc: Any = None
        self._infos: dict[str, Any] = {}     # service type -> registered AsyncServiceInfo
        self._task: asyncio.Task[None] | None = None

    @property
    def names(self) -> Mapping[str, str]:
        """Service type -> the instance name in use (after any conflict renaming)."""
        return {t: info.name[: -len(t) - 1] for t, info in self._infos.items()}

    @property
    def announced(self) -> bool:
        """Whether every service type is registered right now."""
        return all(t in self._infos for t in SERVICE_TYPES)

    @property
    def name(self) -> str:
        """The primary instance name in use, or the configured one before registration."""
        return self.names.get(PRIMARY_TYPE) or instance_name(self.config)

    def start(self) -> None:
        """Start announcing in the background; failures are logged, never raised."""
        reason = not_announced_reason(self.config)
        if reason:
            log.info("LAN discovery: %s", reason)
            return
        self._task = asyncio.create_task(self._run(), name="lan-announce")

    async def close(self) -> None:
        """Withdraw the announcement (goodbye packets) and release the sockets."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if self._zc is None:
            return
        try:
            await asyncio.wait_for(self._withdraw(), timeout=5)
        except Exception:
            log.warning("LAN discovery: withdrawing the announcement failed", exc_info=True)
        self._zc = None

    async def _withdraw(self) -> None:
        for info in list(self._infos.values()):
            await (await self._zc.async_unregister_service(info))
        self._infos.clear()
        await self._zc.async_close()

    async def _run(self) -> None:
        while True:
            try:
                await self._refresh()
            except Exception:
                log.warning("LAN discovery: announcing failed; retrying in %.0f s",
                            self.refresh_seconds, exc_info=True)
            await asyncio.sleep(self.refresh_seconds)

    async def _refresh(self) -> None:
        """Register on the first call; afterwards re-announce only when the addresses changed."""
        addresses = lan_addresses(self.config)
        if self._zc is None:
            self._zc = self._open_zeroconf()
        missing = [t for t in SERVICE_TYPES if t not in self._infos]
        if missing:
            await self._register(missing, addresses)
        elif addresses != self.addresses:
            log.info("LAN discovery: addresses changed to %s; re-announcing", ", ".join(addresses))
            if hasattr(self._zc, "async_update_interfaces"):     # not in older zeroconf releases
                await self._zc.async_update_interfaces()
            for service_type, old in list(self._infos.items()):
                info = self._service_info(service_type, old.name, addresses)
                await (await self._zc.async_update_service(info))
                self._infos[service_type] = info
            self.addresses = addresses

    def _open_zeroconf(self) -> Any:
        from zeroconf import IPVersion
        from zeroconf.asyncio import AsyncZeroconf
        ip_version = IPVersion.All if self.config.host in ("::", "") else IPVersion.V4Only
        return AsyncZeroconf(interfaces=_zeroconf_interfaces(self.config), ip_version=ip_version)

    def _service_info(self, service_type: str, name: str, addresses: tuple[str, ...]) -> Any:
        from zeroconf.asyncio import AsyncServiceInfo
        return AsyncServiceInfo(service_type, name, port=self.config.port,
                                properties=txt_properties(self.config, addresses),
                                server=self.server, parsed_addresses=list(addresses))

    async def _register(self, service_types: list[str], addresses: tuple[str, ...]) -> None:
        wanted = instance_name(self.config)

        async def register(service_type: str) -> None:
            info = self._service_info(service_type, f"{wanted}.{service_type}", addresses)
            # Probing renames the instance ("<name>-2") when another host answers for it.
            announcing = await self._zc.async_register_service(info, allow_name_change=True)
            self._infos[service_type] = info    # registered: from now on close() must withdraw it
            await announcing

        results = await asyncio.gather(*(register(t) for t in service_types), return_exceptions=True)
        self.addresses = addresses
        for result in results:
            if isinstance(result, BaseException):
                raise result
        log.info("LAN discovery: announced as %r on %s (port %d)", self.name,
                 ", ".join(addresses) or "no address", self.config.port)
