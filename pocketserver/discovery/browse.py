"""Find pocketservers (and other Matrix servers) announced on the LAN over mDNS/DNS-SD.

`discover()` backs `pocketserver discover`; `resolve_local_server_name()` is the small resolver
a later federation step uses for `.local` server names; `LanBrowser` is the live view both use.

Spec: RFC 6763 (DNS-Based Service Discovery); server names: appendices, "Server Name".
"""
from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
import re
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping

from pocketserver.discovery.announce import PRIMARY_TYPE, SERVICE_TYPES, url_for

log = logging.getLogger(__name__)

DEFAULT_FEDERATION_PORT = 8448   # Spec: server-server-api, "Resolving server names"
_RESOLVE_MS = 3000


@dataclass(frozen=True, slots=True)
class FoundServer:
    """One server seen on the LAN; announced under one or more service types."""

    name: str                       # the DNS-SD instance name, e.g. "Pocketserver on pi"
    service_types: tuple[str, ...]
    host: str                       # the SRV target, e.g. "pocketserver-0123abcd.local."
    addresses: tuple[str, ...]
    port: int
    txt: Mapping[str, str]

    @property
    def urls(self) -> tuple[str, ...]:
        """Client API base URLs: the announced base_url first, then one per address."""
        urls = []
        base_url = self.txt.get("base_url", "")
        if re.match(r"^https?://[^/\s]+", base_url):
            urls.append(base_url.rstrip("/"))
        for address in self.addresses:
            url = url_for(address, self.port)
            if url not in urls:
                urls.append(url)
        return tuple(urls)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "service_types": list(self.service_types), "host": self.host,
                "addresses": list(self.addresses), "port": self.port, "urls": list(self.urls),
                "txt": dict(self.txt)}


def found_server_from_info(info: Any, service_type: str) -> FoundServer | None:
    """The FoundServer a resolved zeroconf ServiceInfo describes, or None when incomplete."""
    if info.port is None or not info.server:
        return None
    txt: dict[str, str] = {}
    for key, value in (info.properties or {}).items():
        k = key.decode("utf-8", "replace") if isinstance(key, bytes) else str(key)
        v = value.decode("utf-8", "replace") if isinstance(value, bytes) else ("" if value is None else str(value))
        txt[k] = v
    addresses = sorted({str(ipaddress.ip_address(a.split("%")[0])) for a in info.parsed_scoped_addresses()},
                       key=lambda a: (":" in a, a))
    suffix = "." + service_type
    name = info.name[: -len(suffix)] if info.name.endswith(suffix) else info.name
    return FoundServer(name, (service_type,), info.server, tuple(addresses), info.port, txt)


def merge_found(found: Iterable[FoundServer]) -> list[FoundServer]:
    """One entry per server: instances of several types with one host and port merge, and the
    `_pocketserver._tcp` instance's name wins."""
    merged: dict[tuple[str, int], FoundServer] = {}
    for server in sorted(found, key=lambda s: (s.service_types[0] != PRIMARY_TYPE, s.name)):
        key = (server.host.lower(), server.port)
        if key in merged:
            first = merged[key]
            merged[key] = FoundServer(first.name, first.service_types + server.service_types, first.host,
                                      first.addresses or server.addresses, first.port, first.txt or server.txt)
        else:
            merged[key] = server
    return sorted(merged.values(), key=lambda s: (s.name.lower(), s.host))


class LanBrowser:
    """A live view of the servers announced on the LAN (async context manager)."""

    def __init__(self, service_types: Iterable[str] = SERVICE_TYPES) -> None:
        self.service_types = tuple(service_types)
        self._aiozc: Any = None
        self._browser: Any = None
        self._found: dict[tuple[str, str], FoundServer] = {}    # (type, full name) -> server
        self._resolving: set[asyncio.Task[None]] = set()
        self._changed = asyncio.Event()

    async def __aenter__(self) -> LanBrowser:
        from zeroconf import IPVersion
        from zeroconf.asyncio import AsyncServiceBrowser, AsyncZeroconf
        try:
            self._aiozc = AsyncZeroconf(ip_version=IPVersion.All)
        except OSError:                 # no IPv6 on this host
            self._aiozc = AsyncZeroconf(ip_version=IPVersion.V4Only)
        self._browser = AsyncServiceBrowser(self._aiozc.zeroconf, list(self.service_types),
                                            handlers=[self._on_change])
        return self

    async def __aexit__(self, *exc: object) -> None:
        for task in self._resolving:
            task.cancel()
        await asyncio.gather(*self._resolving, return_exceptions=True)
        await self._browser.async_cancel()
        await self._aiozc.async_close()

    def _on_change(self, zeroconf: Any, service_type: str, name: str, state_change: Any) -> None:
        from zeroconf import ServiceStateChange
        if state_change is ServiceStateChange.Removed:
            self._found.pop((service_type, name), None)
            self._changed.set()
            return
        task = asyncio.get_running_loop().create_task(self._resolve(service_type, name))
        self._resolving.add(task)
        task.add_done_callback(self._resolving.discard)

    async def _resolve(self, service_type: str, name: str) -> None:
        from zeroconf.asyncio import AsyncServiceInfo
        info = AsyncServiceInfo(service_type, name)
        if await info.async_request(self._aiozc.zeroconf, _RESOLVE_MS):
            found = found_server_from_info(info, service_type)
            if found is not None:
                self._found[(service_type, name)] = found
                self._changed.set()

    def servers(self) -> list[FoundServer]:
        """The servers announced now, one entry per server."""
        return merge_found(self._found.values())

    async def wait_until(self, predicate: Callable[[list[FoundServer]], bool], timeout: float) -> bool:
        """Wait until predicate(servers()) holds; False when `timeout` seconds pass first."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not predicate(self.servers()):
            self._changed.clear()
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)
        return True


async def discover(timeout: float = 3.0, service_types: Iterable[str] = SERVICE_TYPES) -> list[FoundServer]:
    """Browse the LAN for `timeout` seconds and return the servers announced at the end."""
    async with LanBrowser(service_types) as browser:
        await asyncio.sleep(timeout)
        if browser._resolving:          # give answers that are on their way a moment to land
            await asyncio.wait(set(browser._resolving), timeout=1.0)
        return browser.servers()


def split_server_name(server_name: str) -> tuple[str, int | None]:
    """The host and explicit port of a server name such as `pi.local:8448`."""
    m = re.fullmatch(r"(\[[0-9A-Fa-f:.]+\]|[^:]+)(?::(\d{1,5}))?", server_name)
    if not m:
        raise ValueError(f"not a server name: {server_name!r}")
    return m.group(1).lower(), int(m.group(2)) if m.group(2) else None


def match_server_name(server_name: str, servers: Iterable[FoundServer]) -> tuple[str, int] | None:
    """(address, port) of the announced server whose TXT server_name is `server_name`."""
    host, explicit_port = split_server_name(server_name)
    for server in servers:
        if server.txt.get("server_name", "").lower() in (server_name.lower(), host) and server.addresses:
            return server.addresses[0], explicit_port or server.port
    return None


async def resolve_local_server_name(server_name: str, timeout: float = 3.0) -> tuple[str, int] | None:
    """Resolve a `.local` server name to (address, port) over mDNS, or None.

    First a server announcing that server_name in its TXT record (the announced port: a
    pocketserver serves every API on one port); else the host name's A/AAAA records with the
    explicit port or 8448. Names outside `.local` are not ours to answer: None.
    """
    host, explicit_port = split_server_name(server_name)
    if not host.rstrip(".").endswith(".local"):
        return None
    async with LanBrowser() as browser:
        found: list[tuple[str, int]] = []

        def matched(servers: list[FoundServer]) -> bool:
            hit = match_server_name(server_name, servers)
            if hit:
                found.append(hit)
            return hit is not None

        if await browser.wait_until(matched, timeout):
            return found[-1]
        try:
            from zeroconf import AddressResolver      # zeroconf >= 0.137
        except ImportError:
            return None
        resolver = AddressResolver(host.rstrip(".") + ".")
        if await resolver.async_request(browser._aiozc.zeroconf, _RESOLVE_MS):
            addresses = resolver.parsed_scoped_addresses()
            if addresses:
                return addresses[0], explicit_port or DEFAULT_FEDERATION_PORT
    return None


def discover_command(timeout: float, as_json: bool) -> int:
    """`pocketserver discover`: print the servers found on the LAN."""
    servers = asyncio.run(discover(timeout))
    if as_json:
        print(json.dumps([s.to_json() for s in servers], indent=2))
        return 0
    if not servers:
        print(f"no pocketserver found on the LAN within {timeout:g} s")
    for s in servers:
        txt = s.txt
        print(f"{s.name}\n  server name: {txt.get('server_name', '?')}   version: {txt.get('version', '?')}"
              f"   registration: {txt.get('registration', '?')}\n  URL: {', '.join(s.urls) or '?'}")
    return 0
