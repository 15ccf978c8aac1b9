"""LAN discovery end to end: a real server announces in one network namespace, another browses.

Two namespaces joined by a veth pair (TESTING.md, "Network namespaces"), addresses in 10.x only
inside them, so no packet leaves them. Needs root and `ip netns`; skipped otherwise.
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import pytest

from tests.conftest import ROOT, free_port, stop_process, write_config


def _netns_available() -> str | None:
    """Why netns tests cannot run here, or None when they can."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return "network namespace tests need root"
    if shutil.which("ip") is None:
        return "the ip command is not installed"
    if subprocess.run(["ip", "netns", "list"], capture_output=True).returncode != 0:
        return "ip netns is not available"
    return None


pytestmark = pytest.mark.skipif(_netns_available() is not None, reason=str(_netns_available()))


@dataclass
class NetnsPair:
    a: str
    b: str
    address_a: str
    address_b: str

    def cmd(self, ns: str, *args: str) -> list[str]:
        return ["ip", "netns", "exec", ns, *args]


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=10)


@pytest.fixture
def netns() -> Iterator[NetnsPair]:
    """Two fresh namespaces, A (10.x.y.1) and B (10.x.y.2), joined by a veth pair."""
    tag = secrets.token_hex(3)
    a, b, va, vb = f"psa-{tag}", f"psb-{tag}", f"psva{tag}", f"psvb{tag}"
    x, y = 100 + secrets.randbelow(150), secrets.randbelow(250)
    pair = NetnsPair(a, b, f"10.{x}.{y}.1", f"10.{x}.{y}.2")
    try:
        _ip("netns", "add", a)
        _ip("netns", "add", b)
        _ip("link", "add", va, "type", "veth", "peer", "name", vb)
        _ip("link", "set", va, "netns", a)
        _ip("link", "set", vb, "netns", b)
        _ip("-n", a, "addr", "add", f"{pair.address_a}/24", "dev", va)
        _ip("-n", b, "addr", "add", f"{pair.address_b}/24", "dev", vb)
        for ns, dev in ((a, va), (b, vb)):
            _ip("-n", ns, "link", "set", dev, "up")
            _ip("-n", ns, "link", "set", "lo", "up")
        yield pair
    finally:
        for ns in (a, b):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=10)
        # Deleting namespace A removes the veth pair; this catches a failure before the move.
        subprocess.run(["ip", "link", "del", va], capture_output=True, timeout=10)


@dataclass
class NsServer:
    process: subprocess.Popen[bytes]
    log_path: Path
    port: int

    def stop(self) -> int:
        return stop_process(self.process)


@pytest.fixture
def servers(netns: NetnsPair, tmp_path: Path) -> Iterator[Any]:
    """start(ns, label, **config) runs `pocketserver serve` inside a namespace."""
    started: list[NsServer] = []

    def start(ns: str, label: str, **overrides: Any) -> NsServer:
        port = free_port()
        settings = {"host": "0.0.0.0", "lan_discovery": True, "server_name": f"{label}.test",
                    "log_level": "info", **overrides}
        config = write_config(tmp_path / f"{label}.toml", tmp_path / f"{label}-data", port, **settings)
        log_path = tmp_path / f"{label}.log"
        with open(log_path, "wb") as log:
            process = subprocess.Popen(
                netns.cmd(ns, sys.executable, "-m", "pocketserver", "serve", "--config", str(config)),
                stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
        server = NsServer(process, log_path, port)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def discover(netns: NetnsPair, ns: str, timeout: float = 5) -> list[dict[str, Any]]:
    result = subprocess.run(netns.cmd(ns, sys.executable, "-m", "pocketserver", "discover",
                                      "--timeout", str(timeout), "--json"),
                            capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def wait_announced(server: NsServer, timeout: float = 30) -> None:
    """Wait for the server's log line saying its announcement went out."""
    deadline = time.monotonic() + timeout
    while b"LAN discovery: announced as" not in server.log_path.read_bytes():
        assert server.process.poll() is None, server.log_path.read_text()
        assert time.monotonic() < deadline, server.log_path.read_text()
        time.sleep(0.1)


# Run in namespace B: print "found" once the named server appears, then "gone" once it is
# withdrawn (a goodbye packet; without one it would linger for the records' 120 s TTL).
WATCHER = """
import asyncio, sys
from pocketserver.discovery.browse import LanBrowser

async def main(name):
    async with LanBrowser() as browser:
        named = lambda servers: any(s.name == name for s in servers)
        if not await browser.wait_until(named, 30):
            print("timeout", flush=True); return
        print("found", flush=True)
        gone = await browser.wait_until(lambda servers: not named(servers), 30)
        print("gone" if gone else "still-there", flush=True)

asyncio.run(main(sys.argv[1]))
"""


def test_discover_finds_server_with_txt_data(netns: NetnsPair, servers: Any) -> None:
    server = servers(netns.a, "alpha", lan_discovery_name="Alpha Pocket")
    wait_announced(server)
    started = time.monotonic()
    found = [s for s in discover(netns, netns.b, timeout=5) if s["name"] == "Alpha Pocket"]
    assert time.monotonic() - started < 15
    assert len(found) == 1, found
    entry = found[0]
    base_url = f"http://{netns.address_a}:{server.port}"
    assert entry["port"] == server.port
    assert entry["addresses"] == [netns.address_a]
    assert sorted(entry["service_types"]) == ["_matrix._tcp.local.", "_pocketserver._tcp.local."]
    assert entry["txt"] == {"txtvers": "1", "server_name": "alpha.test", "path": "/", "base_url": base_url,
                            "version": "0.1.0", "registration": "token", "federation": "off"}
    assert entry["urls"] == [base_url]
    # The announced URL is the one that works from the other host.
    fetch = subprocess.run(netns.cmd(netns.b, sys.executable, "-c",
                                     "import sys, urllib.request; print(urllib.request.urlopen("
                                     "sys.argv[1], timeout=5).read().decode())", base_url + "/"),
                           capture_output=True, text=True, timeout=30)
    assert fetch.returncode == 0, fetch.stderr
    assert "alpha.test" in fetch.stdout and "Alpha Pocket" in fetch.stdout


def test_announcement_withdrawn_on_sigterm(netns: NetnsPair, servers: Any) -> None:
    server = servers(netns.a, "alpha", lan_discovery_name="Going Away")
    watcher = subprocess.Popen(netns.cmd(netns.b, sys.executable, "-c", WATCHER, "Going Away"),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert watcher.stdout is not None
        assert watcher.stdout.readline().strip() == "found"
        server.process.send_signal(signal.SIGTERM)
        sent = time.monotonic()
        assert watcher.stdout.readline().strip() == "gone", watcher.stderr.read() if watcher.stderr else ""
        assert time.monotonic() - sent < 15     # the goodbye, not the 120 s TTL running out
        assert server.process.wait(timeout=30) == 0, server.log_path.read_text()
    finally:
        watcher.kill()
        watcher.communicate()     # reaps it and closes its pipes
    assert not [s for s in discover(netns, netns.b, timeout=3) if s["name"].startswith("Going Away")]


def test_name_conflict_is_resolved(netns: NetnsPair, servers: Any) -> None:
    first = servers(netns.a, "alpha", lan_discovery_name="Same Name")
    wait_announced(first)
    second = servers(netns.b, "beta", lan_discovery_name="Same Name")
    wait_announced(second)
    found = {s["txt"]["server_name"]: s for s in discover(netns, netns.a, timeout=4)}
    assert set(found) == {"alpha.test", "beta.test"}, found
    assert found["alpha.test"]["name"] == "Same Name"
    assert found["beta.test"]["name"] == "Same Name-2"
    assert found["alpha.test"]["addresses"] == [netns.address_a]
    assert found["beta.test"]["addresses"] == [netns.address_b]
    assert "announced as 'Same Name-2'" in second.log_path.read_text()
