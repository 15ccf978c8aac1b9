"""What is announced and what `discover` makes of it, without a network.

No test here opens a zeroconf socket: the announcer runs against a fake AsyncZeroconf and
interfaces come from a fake ifaddr, so nothing is multicast on the host's LAN. The real
mDNS round trip runs between network namespaces in test_announce_netns.py.
"""
from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import ifaddr
import pytest
from zeroconf.asyncio import AsyncServiceInfo

from pocketserver.__main__ import main
from pocketserver.config import load
from pocketserver.discovery import announce, browse
from pocketserver.discovery.announce import (PRIMARY_TYPE, SERVICE_TYPES, Announcer, instance_name,
                                             lan_addresses, registration_mode, txt_properties)
from pocketserver.discovery.browse import (FoundServer, found_server_from_info, match_server_name,
                                           merge_found, resolve_local_server_name, split_server_name)


def make_config(**overrides: Any) -> Any:
    flags = {"server_name": "pi.test", "data_dir": "/nonexistent", "port": 8008, **overrides}
    return load(environ={}, flags=flags)


def adapter(name: str, *ips: str | tuple[str, int, int], index: int = 1) -> Any:
    return SimpleNamespace(name=name, nice_name=name, index=index,
                           ips=[SimpleNamespace(ip=ip, is_IPv4=isinstance(ip, str)) for ip in ips])


LO = adapter("lo", "127.0.0.1", ("::1", 0, 0), index=1)
ETH = adapter("eth0", "192.168.1.20", ("fe80::1", 0, 2), ("fd00::20", 0, 0), index=2)
WLAN = adapter("wlan0", "10.0.0.7", index=3)


@pytest.fixture
def adapters(monkeypatch: pytest.MonkeyPatch) -> Any:
    def use(*found: Any) -> None:
        monkeypatch.setattr(ifaddr, "get_adapters", lambda: list(found))
    use(LO, ETH, WLAN)
    return use


# --- what is announced ----------------------------------------------------------------------

def test_lan_addresses_on_every_ipv4_interface(adapters: Any) -> None:
    assert lan_addresses(make_config(host="0.0.0.0")) == ("10.0.0.7", "192.168.1.20")


def test_lan_addresses_include_ipv6_when_listening_on_ipv6_but_never_link_local(adapters: Any) -> None:
    assert lan_addresses(make_config(host="::")) == ("10.0.0.7", "192.168.1.20", "fd00::20")


def test_lan_addresses_only_loopback_when_nothing_else_exists(adapters: Any) -> None:
    adapters(LO)
    assert lan_addresses(make_config(host="0.0.0.0")) == ("127.0.0.1",)


def test_lan_addresses_of_configured_interfaces_by_name_or_address(adapters: Any) -> None:
    assert lan_addresses(make_config(lan_discovery_interfaces="eth0")) == ("192.168.1.20",)
    assert lan_addresses(make_config(lan_discovery_interfaces=" 10.0.0.7 , nope")) == ("10.0.0.7",)


def test_lan_addresses_when_listening_on_one_address(adapters: Any) -> None:
    assert lan_addresses(make_config(host="192.168.1.20")) == ("192.168.1.20",)


def test_instance_name_default_configured_and_truncated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(announce.socket, "gethostname", lambda: "kitchen-pi.fritz.box")
    assert instance_name(make_config()) == "Pocketserver on kitchen-pi"
    assert instance_name(make_config(lan_discovery_name="  Family chat ")) == "Family chat"
    long = instance_name(make_config(lan_discovery_name="é" * 40))
    assert len(long.encode()) <= announce.MAX_INSTANCE_NAME_BYTES and long == "é" * 29


def test_registration_mode() -> None:
    assert registration_mode(make_config()) == "closed"
    assert registration_mode(make_config(enable_registration=True)) == "token"
    assert registration_mode(make_config(enable_registration=True, registration_requires_token=False)) == "open"


def test_txt_record_holds_no_secrets() -> None:
    config = make_config(registration_shared_secret="hunter2", public_baseurl="https://chat.example.org/")
    txt = txt_properties(config, ("192.168.1.20",))
    assert txt == {"txtvers": "1", "server_name": "pi.test", "path": "/", "base_url": "https://chat.example.org",
                   "version": "0.1.0", "registration": "closed", "federation": "off"}
    assert "hunter2" not in json.dumps(txt)


def test_host_name_is_stable_per_key_and_not_the_machine_name() -> None:
    assert announce.host_name(b"k" * 32) == announce.host_name(b"k" * 32)
    assert announce.host_name(b"k" * 32) != announce.host_name(b"j" * 32)
    assert announce.host_name(b"k" * 32).startswith("pocketserver-")


# --- the announcer's lifecycle against a fake zeroconf ---------------------------------------

class FakeZeroconf:
    """Records calls; every second name registration "finds" a conflict, as probing would."""

    def __init__(self, taken: set[str] = frozenset()) -> None:  # type: ignore[assignment]
        self.taken = set(taken)
        self.registered: dict[str, Any] = {}
        self.calls: list[str] = []

    @staticmethod
    async def _done() -> None:
        return None

    async def async_register_service(self, info: Any, allow_name_change: bool = False) -> Any:
        assert allow_name_change
        instance = info.name[: -len(info.type) - 1]
        n = 2
        while info.name.lower() in self.taken:
            info.name = f"{instance}-{n}.{info.type}"
            n += 1
        self.registered[info.type] = info
        self.calls.append(f"register {info.name}")
        return self._done()

    async def async_update_service(self, info: Any) -> Any:
        self.registered[info.type] = info
        self.calls.append(f"update {info.name}")
        return self._done()

    async def async_update_interfaces(self) -> None:
        self.calls.append("update_interfaces")

    async def async_unregister_service(self, info: Any) -> Any:
        self.registered.pop(info.type)
        self.calls.append(f"unregister {info.name}")
        return self._done()

    async def async_close(self) -> None:
        self.calls.append("close")


async def test_announcer_registers_refreshes_on_address_change_and_withdraws(
        monkeypatch: pytest.MonkeyPatch) -> None:
    config = make_config(lan_discovery_name="Home", enable_registration=True)
    fake = FakeZeroconf(taken={f"home.{PRIMARY_TYPE}"})
    addresses = ["192.168.1.20"]
    monkeypatch.setattr(announce, "lan_addresses", lambda c: tuple(addresses))
    announcer = Announcer(config, b"key")
    monkeypatch.setattr(announcer, "_open_zeroconf", lambda: fake)

    await announcer._refresh()
    assert announcer.announced and announcer.name == "Home-2"        # the conflict was resolved
    assert announcer.names == {PRIMARY_TYPE: "Home-2", "_matrix._tcp.local.": "Home"}
    info = fake.registered[PRIMARY_TYPE]
    assert info.port == 8008 and info.server == announce.host_name(b"key")
    assert info.parsed_addresses() == ["192.168.1.20"]
    assert info.properties[b"base_url"] == b"http://192.168.1.20:8008"
    assert info.properties[b"registration"] == b"token"

    fake.calls.clear()
    await announcer._refresh()                      # nothing changed: no traffic
    assert fake.calls == []

    addresses[:] = ["192.168.1.31", "10.0.0.7"]
    await announcer._refresh()
    assert fake.calls[0] == "update_interfaces"
    assert sorted(fake.calls[1:]) == [f"update Home-2.{PRIMARY_TYPE}", "update Home._matrix._tcp.local."]
    info = fake.registered[PRIMARY_TYPE]
    assert sorted(info.parsed_addresses()) == ["10.0.0.7", "192.168.1.31"]
    assert info.properties[b"base_url"] == b"http://192.168.1.31:8008"

    fake.calls.clear()
    await announcer.close()
    assert sorted(fake.calls[:2]) == [f"unregister Home-2.{PRIMARY_TYPE}", "unregister Home._matrix._tcp.local."]
    assert fake.calls[2:] == ["close"] and not announcer.announced


async def test_announcer_failure_is_logged_and_retried(monkeypatch: pytest.MonkeyPatch,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    announcer = Announcer(make_config(), b"key", refresh_seconds=0.01)
    attempts = []
    fake = FakeZeroconf()

    def open_zeroconf() -> Any:
        attempts.append(1)
        if len(attempts) < 3:
            raise OSError("no multicast interface")
        return fake
    monkeypatch.setattr(announcer, "_open_zeroconf", open_zeroconf)
    monkeypatch.setattr(announce, "lan_addresses", lambda c: ("192.168.1.20",))
    announcer.start()
    for _ in range(200):
        if announcer.announced:
            break
        await __import__("asyncio").sleep(0.01)
    assert announcer.announced and len(attempts) == 3
    assert "announcing failed" in caplog.text
    await announcer.close()
    assert fake.calls[-1] == "close"


async def test_announcer_does_not_announce_a_loopback_only_server() -> None:
    announcer = Announcer(make_config(host="127.0.0.1"), b"key")
    announcer.start()
    assert announcer._task is None
    await announcer.close()


# --- what discover makes of an announcement --------------------------------------------------

def announced_info(service_type: str = PRIMARY_TYPE, name: str = "Home", addresses: tuple[str, ...] = (
        "192.168.1.20", "fd00::20"), server: str = "pocketserver-abc.local.") -> AsyncServiceInfo:
    config = make_config(host="::")
    return AsyncServiceInfo(service_type, f"{name}.{service_type}", port=8008,
                            properties=txt_properties(config, addresses), server=server,
                            parsed_addresses=list(addresses))


def test_found_server_from_an_announced_service_info() -> None:
    found = found_server_from_info(announced_info(), PRIMARY_TYPE)
    assert found is not None
    assert found.name == "Home" and found.port == 8008 and found.host == "pocketserver-abc.local."
    assert found.addresses == ("192.168.1.20", "fd00::20")
    assert found.txt["server_name"] == "pi.test" and found.txt["path"] == "/"
    assert found.urls == ("http://192.168.1.20:8008", "http://[fd00::20]:8008")
    assert found.to_json()["txt"]["base_url"] == "http://192.168.1.20:8008"


def test_found_server_urls_skip_a_bad_base_url() -> None:
    server = FoundServer("x", (PRIMARY_TYPE,), "h.local.", ("10.1.2.3",), 8448, {"base_url": "javascript:x"})
    assert server.urls == ("http://10.1.2.3:8448",)


def test_merge_found_joins_one_server_announced_under_both_types() -> None:
    primary = found_server_from_info(announced_info(PRIMARY_TYPE, "Home-2"), PRIMARY_TYPE)
    generic = found_server_from_info(announced_info("_matrix._tcp.local.", "Home"), "_matrix._tcp.local.")
    other = found_server_from_info(announced_info(name="Other", server="pocketserver-def.local."), PRIMARY_TYPE)
    merged = merge_found([generic, other, primary])   # type: ignore[list-item]
    assert [(s.name, s.service_types) for s in merged] == [
        ("Home-2", SERVICE_TYPES), ("Other", (PRIMARY_TYPE,))]


def test_split_server_name() -> None:
    assert split_server_name("pi.local") == ("pi.local", None)
    assert split_server_name("Pi.Local:8448") == ("pi.local", 8448)
    assert split_server_name("[fd00::1]:8008") == ("[fd00::1]", 8008)
    with pytest.raises(ValueError):
        split_server_name("a:b:c")


def test_match_server_name_uses_the_announced_server_name() -> None:
    found = [FoundServer("A", (PRIMARY_TYPE,), "h1.local.", ("10.0.0.1",), 8008, {"server_name": "a.local"}),
             FoundServer("B", (PRIMARY_TYPE,), "h2.local.", ("10.0.0.2",), 8009, {"server_name": "b.local"})]
    assert match_server_name("b.local", found) == ("10.0.0.2", 8009)
    assert match_server_name("B.LOCAL:8448", found) == ("10.0.0.2", 8448)
    assert match_server_name("c.local", found) is None


async def test_resolve_local_server_name_ignores_names_outside_local() -> None:
    assert await resolve_local_server_name("matrix.org") is None     # answered without any network


def test_discover_command_prints_json(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    found = found_server_from_info(announced_info(), PRIMARY_TYPE)
    seen: list[float] = []

    async def fake_discover(timeout: float) -> list[FoundServer]:
        seen.append(timeout)
        return [found]  # type: ignore[list-item]
    monkeypatch.setattr(browse, "discover", fake_discover)
    assert main(["discover", "--timeout", "0.5", "--json"]) == 0
    assert seen == [0.5]
    out = json.loads(capsys.readouterr().out)
    assert out[0]["name"] == "Home" and out[0]["urls"][0] == "http://192.168.1.20:8008"
    assert main(["discover"]) == 0
    text = capsys.readouterr().out
    assert "Home" in text and "pi.test" in text and "http://192.168.1.20:8008" in text


def test_welcome_line_says_where_the_server_is_announced(adapters: Any) -> None:
    line = announce.welcome_line(make_config(lan_discovery_name="Home"))
    assert line == '  On the LAN as "Home" at http://10.0.0.7:8008 (see: pocketserver discover)'
    assert "127.0.0.1 only" in announce.welcome_line(make_config(host="127.0.0.1"))
    assert "host must be an IP address" in announce.welcome_line(make_config(host="localhost"))
    assert "LAN discovery is off" in announce.welcome_line(make_config(lan_discovery=False))
