"""Shared fixtures: a real pocketserver process on 127.0.0.1, and an in-process app."""
from __future__ import annotations

import hashlib
import hmac
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, AsyncIterator, Iterator

import aiohttp
import pytest

from pocketserver.app import create_app
from pocketserver.config import load

ROOT = Path(__file__).resolve().parents[1]
SHARED_SECRET = "test-shared-secret"

# Fast password hashing and generous rate limits for tests; each test that checks a limit
# builds its own server with tight ones.
TEST_SETTINGS: dict[str, Any] = {
    "enable_registration": True,
    "registration_requires_token": True,
    "registration_shared_secret": SHARED_SECRET,
    "password_hash_opslimit": 1,
    "password_hash_memlimit_kib": 8192,
    "rc_login_per_second": 1000.0,
    "rc_login_burst": 1000,
    "rc_registration_per_second": 1000.0,
    "rc_registration_burst": 1000,
    "rc_failed_auth_per_second": 1000.0,
    "rc_failed_auth_burst": 1000,
    "rc_message_per_second": 1000.0,
    "rc_message_burst": 10000,
    "rc_room_creation_per_second": 1000.0,
    "rc_room_creation_burst": 1000,
    "rc_invites_per_second": 1000.0,
    "rc_invites_burst": 1000,
    "rc_invites_received_per_second": 1000.0,
    "rc_invites_received_burst": 1000,
    "rc_joins_per_second": 1000.0,
    "rc_joins_burst": 1000,
    "rc_receipts_per_second": 1000.0,
    "rc_receipts_burst": 1000,
    "rc_typing_per_second": 1000.0,
    "rc_typing_burst": 1000,
    "enable_metrics": True,
    "log_level": "warning",
    "lan_discovery": False,   # no multicast from tests; the netns tests turn it on
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_config(path: Path, data_dir: Path, port: int, **overrides: Any) -> Path:
    settings = {**TEST_SETTINGS, "server_name": "test.local", "host": "127.0.0.1", "port": port,
                "data_dir": str(data_dir), **overrides}
    lines = []
    for key, value in settings.items():
        if isinstance(value, bool):
            lines.append(f"{key} = {'true' if value else 'false'}")
        elif isinstance(value, (int, float)):
            lines.append(f"{key} = {value!r}")
        else:
            lines.append(f'{key} = "{value}"')
    path.write_text("\n".join(lines) + "\n")
    return path


@dataclass
class RunningServer:
    """A pocketserver subprocess serving on 127.0.0.1."""

    base_url: str
    config_path: Path
    data_dir: Path
    process: subprocess.Popen[bytes]
    server_name: str = "test.local"

    def cli(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        """Run a `pocketserver` subcommand against this server's config."""
        return subprocess.run([sys.executable, "-m", "pocketserver", *args, "--config", str(self.config_path)],
                              input=stdin, capture_output=True, text=True, cwd=ROOT, timeout=60)

    def stop(self) -> int:
        return stop_process(self.process)

    async def register_shared_secret(self, session: aiohttp.ClientSession, username: str,
                                     password: str, admin: bool = False) -> dict[str, Any]:
        """Register through Synapse's shared-secret admin API."""
        url = f"{self.base_url}/_synapse/admin/v1/register"
        async with session.get(url) as resp:
            nonce = (await resp.json())["nonce"]
        mac = hmac.new(SHARED_SECRET.encode(), b"\x00".join(
            [nonce.encode(), username.encode(), password.encode(), b"admin" if admin else b"notadmin"]),
            hashlib.sha1).hexdigest()
        async with session.post(url, json={"nonce": nonce, "username": username, "password": password,
                                           "admin": admin, "mac": mac}) as resp:
            body = await resp.json()
            assert resp.status == 200, body
            return body


def spawn_server(config_path: Path, log: Path, *, append: bool = False) -> subprocess.Popen[bytes]:
    """`pocketserver serve` in a new process, its output written to `log` (by the child alone: this
    process closes its copy of the file at once)."""
    with open(log, "ab" if append else "wb") as out:
        return subprocess.Popen([sys.executable, "-m", "pocketserver", "serve", "--config", str(config_path)],
                                stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)


def start_server(tmp: Path, **overrides: Any) -> RunningServer:
    port = free_port()
    data_dir = tmp / "data"
    config_path = write_config(tmp / "pocketserver.toml", data_dir, port, **overrides)
    process = spawn_server(config_path, tmp / "server.log")
    base_url = f"http://127.0.0.1:{port}"
    wait_until_serving(base_url, process, tmp / "server.log")
    return RunningServer(base_url, config_path, data_dir, process)


def wait_until_serving(base_url: str, process: subprocess.Popen[bytes], log: Path, timeout: float = 30) -> None:
    """Wait until the server answers /versions; raise RuntimeError with its log if it exits or hangs."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"{base_url}/_matrix/client/versions", timeout=1) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        if process.poll() is not None:
            raise RuntimeError(f"server exited:\n{log.read_text()}")
        if time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"server did not answer within {timeout:.0f} s:\n{log.read_text()}")
        time.sleep(0.05)


def stop_process(process: subprocess.Popen[bytes], timeout: float = 30) -> int:
    """SIGTERM, wait, SIGKILL after `timeout`; returns the exit code."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode


@pytest.fixture(scope="module")
def homeserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """One real server per test module."""
    server = start_server(tmp_path_factory.mktemp("hs"))
    yield server
    assert server.stop() == 0, "server did not shut down cleanly"


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
def app_factory(tmp_path: Path):
    """Build an in-process app with test settings plus overrides, for Quart's test client."""
    def make(**overrides: Any):
        flags = {**TEST_SETTINGS, "server_name": "test.local", "data_dir": str(tmp_path / "data"), **overrides}
        return create_app(load(environ={}, flags=flags))
    return make


# In-process HTTP tests through Quart's test client (moved here so every test folder can use them).
class Api:
    """A thin JSON client over Quart's test client."""

    def __init__(self, client: Any, server: Any) -> None:
        self.client = client
        self.server = server

    async def call(self, method: str, path: str, body: Any = None, *, token: str | None = None,
                   raw: bytes | None = None, query: dict[str, str] | None = None,
                   headers: dict[str, str] | None = None) -> tuple[int, Any]:
        hdrs = dict(headers or {})
        if token:
            hdrs["Authorization"] = f"Bearer {token}"
        kwargs: dict[str, Any] = {"headers": hdrs, "query_string": query}
        if raw is not None:
            kwargs["data"] = raw
        elif body is not None:
            kwargs["json"] = body
        resp = await self.client.open(path, method=method, **kwargs)
        return resp.status_code, await resp.get_json(force=True, silent=True)

    async def tokens(self, *names: str) -> list[str]:
        """Register users and return their access tokens."""
        return [(await self.register(n))["access_token"] for n in names]

    async def create_room(self, token: str, **body: Any) -> str:
        """Create a room (createRoom body as keyword arguments) and return its ID."""
        status, resp = await self.call("POST", "/_matrix/client/v3/createRoom", body, token=token)
        assert status == 200, resp
        return resp["room_id"]

    async def register(self, username: str, password: str = "pw", **extra: Any) -> dict[str, Any]:
        """Register with a fresh token through the full UIA flow."""
        token = await self.server.registration.create_token(None, 1, None)
        status, body = await self.call("POST", "/_matrix/client/v3/register", {"username": username,
                                       "password": password, **extra})
        assert status == 401, body
        session = body["session"]
        status, body = await self.call("POST", "/_matrix/client/v3/register", {
            "username": username, "password": password, **extra,
            "auth": {"type": "m.login.registration_token", "token": token, "session": session}})
        assert status == 401 and body["completed"] == ["m.login.registration_token"], body
        status, body = await self.call("POST", "/_matrix/client/v3/register", {
            "username": username, "password": password, **extra,
            "auth": {"type": "m.login.dummy", "session": session}})
        assert status == 200, body
        return body


@pytest.fixture
async def make_api(app_factory):
    """Start an in-process app with overrides; returns an Api bound to it."""
    contexts = []

    async def make(**overrides: Any) -> Api:
        app = app_factory(**overrides)
        ctx = app.test_app()
        test_app = await ctx.__aenter__()
        contexts.append(ctx)
        return Api(test_app.test_client(), app.config["POCKETSERVER"])

    yield make
    for ctx in reversed(contexts):
        await ctx.__aexit__(None, None, None)


@pytest.fixture
async def api(make_api) -> AsyncIterator[Api]:
    yield await make_api()
