"""The single-file executable: build it with PyInstaller, then drive the binary (not the source).

The build is cached under ~/.cache/pocketserver-build/<key>/, keyed by a hash of pocketserver/,
pyproject.toml, the spec, the Python and the installed distributions, so repeated local runs skip
it and CI builds once per run.
"""
from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from importlib import metadata
from pathlib import Path
from typing import Iterator

import aiohttp
import pytest

pytest.importorskip("PyInstaller", reason="PyInstaller is not installed (it comes with the `test` extra: "
                                          "pip install -e '.[test]')")

from nio import (AsyncClient, LoginResponse, RoomCreateResponse, RoomMessageText,  # noqa: E402
                 RoomSendResponse, SyncResponse)

from pocketserver import __version__  # noqa: E402
from pocketserver.storage.database import SCHEMA_VERSION  # noqa: E402
from tests.conftest import ROOT, free_port, wait_until_serving  # noqa: E402

SPEC = ROOT / "build" / "pyinstaller.spec"
CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "pocketserver-build"
KEEP_BUILDS = 3
PASSWORD = "correct horse battery staple"


def build_key() -> str:
    """A hash of everything that goes into the binary."""
    h = hashlib.sha256()
    files = sorted(p for p in (ROOT / "pocketserver").rglob("*")
                   if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc")
    for path in [*files, ROOT / "pyproject.toml", SPEC]:
        h.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes() + b"\0")
    h.update(sys.version.encode())
    h.update(sys.platform.encode() + os.uname().machine.encode())
    dists = sorted(f"{d.metadata['Name']}=={d.version}" for d in metadata.distributions())
    h.update("\n".join(dists).encode())
    return h.hexdigest()[:24]


def build_binary() -> Path:
    """The path of dist/pocketserver for the current sources, building it when not cached."""
    target = CACHE / build_key() / "pocketserver"
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="pocketserver-build-") as tmp:
        log = Path(tmp) / "build.log"
        with log.open("wb") as out:
            result = subprocess.run(
                [sys.executable, "-m", "PyInstaller", "--noconfirm", "--log-level", "WARN",
                 "--distpath", str(Path(tmp) / "dist"), "--workpath", str(Path(tmp) / "work"), str(SPEC)],
                cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, timeout=900)
        if result.returncode != 0:
            pytest.fail(f"PyInstaller failed ({result.returncode}):\n{log.read_text()[-6000:]}")
        partial = target.with_name(f".pocketserver.{os.getpid()}.partial")
        shutil.move(str(Path(tmp) / "dist" / "pocketserver"), partial)
        os.replace(partial, target)          # atomic: a half-copied binary is never cached
    _prune_old_builds()
    return target


def _prune_old_builds() -> None:
    builds = sorted((p for p in CACHE.iterdir() if p.is_dir()), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in builds[KEEP_BUILDS:]:      # the oldest; a build running elsewhere is the newest
        shutil.rmtree(old, ignore_errors=True)


@pytest.fixture(scope="module")
def binary() -> Path:
    return build_binary()


class BinaryServer:
    """The binary serving on 127.0.0.1 with no config, in `cwd`."""

    def __init__(self, binary: Path, cwd: Path, port: int, log: Path) -> None:
        self.base_url = f"http://127.0.0.1:{port}"
        self.log = log
        self._out = log.open("ab")
        self.process = subprocess.Popen([str(binary), "--host", "127.0.0.1", "--port", str(port)],
                                        cwd=cwd, stdout=self._out, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL)
        try:
            wait_until_serving(self.base_url, self.process, log, timeout=60)
        except RuntimeError as exc:
            pytest.fail(f"the binary did not start: {exc}")

    def stop(self) -> int:
        """SIGTERM, as systemd sends it; returns the exit code."""
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            pytest.fail(f"the binary did not stop within 30 s of SIGTERM:\n{self.log.read_text()}")
        finally:
            self._out.close()


@pytest.fixture
def workdir(tmp_path: Path) -> Iterator[Path]:
    empty = tmp_path / "cwd"
    empty.mkdir()
    yield empty


def test_binary_holds_every_module_and_migration(binary: Path) -> None:
    """Whatever lands in pocketserver/ (modules, *.sql) and the native parts of the optional
    dependencies are inside, without anyone editing the spec."""
    from PyInstaller.archive.readers import pkg_archive_contents
    contents = set(pkg_archive_contents(str(binary)))
    package = ROOT / "pocketserver"
    modules = {".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
               for p in package.rglob("*.py") if "__pycache__" not in p.parts}
    assert not modules - contents, f"modules missing from the binary: {sorted(modules - contents)}"
    migrations = {f"pocketserver/storage/migrations/{p.name}" for p in (package / "storage" / "migrations").glob("*.sql")}
    assert migrations and not migrations - contents, sorted(migrations - contents)
    # Every compiled module of zeroconf, aiohttp and PyNaCl (Cython modules import one another at
    # run time; nacl/_sodium carries libsodium); Pillow's core and the plugins thumbnails need.
    for name, extra in (("zeroconf", ()), ("aiohttp", ()), ("nacl", ()),
                        ("PIL", ("PIL.Image", "PIL.JpegImagePlugin", "PIL.PngImagePlugin",
                                 "PIL.WebPImagePlugin", "PIL.GifImagePlugin"))):
        spec = importlib.util.find_spec(name)
        if spec is None or spec.origin is None:
            continue
        where = Path(spec.origin).parent
        native = where.glob("_imaging.*.so") if name == "PIL" else where.rglob("*.so")
        wanted = {name, *extra} | {str(p.relative_to(where.parent)) for p in native}
        assert not wanted - contents, f"{name}: missing from the binary: {sorted(wanted - contents)}"


def test_version(binary: Path) -> None:
    result = subprocess.run([str(binary), "--version"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"pocketserver {__version__}"


async def _sync_until(client: AsyncClient, room_id: str, body: str) -> list[str]:
    """Long-poll /sync until `body` arrives in the room's timeline (10 s at most)."""
    seen: list[str] = []
    deadline = time.monotonic() + 10
    while body not in seen and time.monotonic() < deadline:
        sync = await client.sync(timeout=5_000, since=client.next_batch)
        assert isinstance(sync, SyncResponse), sync
        room = sync.rooms.join.get(room_id)
        seen += [e.body for e in (room.timeline.events if room else []) if isinstance(e, RoomMessageText)]
    return seen


def make_png(width: int, height: int) -> bytes:
    """A small RGB gradient PNG, built by hand so the test itself needs no imaging library."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    rows = b"".join(b"\0" + bytes(v for x in range(width) for v in (x % 256, y % 256, 128))
                    for y in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


async def _thumbnail_round_trip(base_url: str, token: str) -> None:
    """Upload an image and fetch a 32x32 thumbnail: Pillow and its libraries work in the binary."""
    original = make_png(200, 120)
    headers = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession(headers=headers) as http:
        async with http.post(f"{base_url}/_matrix/media/v3/upload?filename=gradient.png", data=original,
                             headers={"Content-Type": "image/png"}) as resp:
            body = await resp.json()
            assert resp.status == 200, body
        server_name, media_id = body["content_uri"].removeprefix("mxc://").split("/")
        async with http.get(f"{base_url}/_matrix/client/v1/media/thumbnail/{server_name}/{media_id}",
                            params={"width": "32", "height": "32", "method": "crop"}) as resp:
            thumbnail = await resp.read()
            assert resp.status == 200, thumbnail[:300]
            assert resp.headers["Content-Type"].startswith("image/")
    assert thumbnail != original and len(thumbnail) < len(original)


async def test_binary_serves_persists_and_stops_cleanly(binary: Path, workdir: Path, tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "server.log"
    server = BinaryServer(binary, workdir, port, log)
    data = workdir / "pocketserver-data"
    try:
        assert {p.name for p in data.iterdir()} >= {"homeserver.db", "signing.key", "pocketserver.toml"}
        password_file = tmp_path / "password"
        password_file.write_text(PASSWORD + "\n")
        added = subprocess.run([str(binary), "user", "add", "alice", "--password-file", str(password_file),
                                "--data-dir", str(data)], capture_output=True, text=True, cwd=workdir,
                               timeout=120)
        assert added.returncode == 0, added.stdout + added.stderr
        assert "created @alice:" in added.stdout

        client = AsyncClient(server.base_url, "alice")
        try:
            login = await client.login(PASSWORD, device_name="binary smoke test")
            assert isinstance(login, LoginResponse), login
            token = login.access_token
            assert isinstance(await client.sync(timeout=0), SyncResponse)
            created = await client.room_create(name="Binary")
            assert isinstance(created, RoomCreateResponse), created
            sent = await client.room_send(created.room_id, "m.room.message",
                                          {"msgtype": "m.text", "body": "hello from the binary"})
            assert isinstance(sent, RoomSendResponse), sent
            assert "hello from the binary" in await _sync_until(client, created.room_id, "hello from the binary")
            await _thumbnail_round_trip(server.base_url, token)
        finally:
            await client.close()
    finally:
        code = server.stop()
    output = log.read_text()
    assert code == 0, f"exit code {code} after SIGTERM:\n{output}"
    assert "stopped cleanly" in output
    # One access line per request (method, path, status, time), and never a token or a body.
    assert "GET /_matrix/client/versions 200" in output
    assert "PUT /_matrix/client/v3/rooms/" in output
    assert token not in output and PASSWORD not in output and "hello from the binary" not in output
    assert "POST /_matrix/media/v3/upload 200" in output and "filename=" not in output   # no query strings

    # Start again in the same directory: the message was durably committed before its 200.
    again = BinaryServer(binary, workdir, port, log)
    try:
        client = AsyncClient(server.base_url, "alice")
        try:
            assert isinstance(await client.login(PASSWORD), LoginResponse)
            sync = await client.sync(timeout=0, full_state=True)
            assert isinstance(sync, SyncResponse), sync
            room = sync.rooms.join[created.room_id]
            assert "hello from the binary" in [e.body for e in room.timeline.events
                                               if isinstance(e, RoomMessageText)]
        finally:
            await client.close()
    finally:
        assert again.stop() == 0, log.read_text()


def test_doctor_in_the_binary(binary: Path, tmp_path: Path) -> None:
    result = subprocess.run([str(binary), "doctor", "--data-dir", str(tmp_path / "absent")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and "[FAIL] data directory" in result.stdout, result.stdout + result.stderr
    # Every migration of this source tree is inside the binary.
    assert f"this build creates schema version {SCHEMA_VERSION}" in result.stdout
