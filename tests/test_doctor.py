"""`pocketserver doctor`: a healthy data directory passes; each kind of damage is named with a fix."""
from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Iterator

import pytest

from pocketserver.config import CONFIG_FILE_NAME, load, render_toml
from pocketserver.doctor import FAIL, OK, WARN, diagnose, run_doctor
from pocketserver.server_key import load_or_create_signing_key
from pocketserver.storage.database import SCHEMA_VERSION, migrate
from tests.conftest import ROOT, free_port


@pytest.fixture(autouse=True)
def _no_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith("POCKETSERVER_"):
            monkeypatch.delenv(key)


def make_data_dir(tmp_path: Path, port: int | None = None) -> Path:
    """A data directory as a first start leaves it: config file, migrated database, signing key."""
    data = tmp_path / "data"
    data.mkdir()
    config = load(environ={}, flags={"data_dir": str(data), "host": "127.0.0.1",
                                     "port": port or free_port(), "server_name": "test.local"})
    (data / CONFIG_FILE_NAME).write_text(render_toml(config, skip=("data_dir",)), encoding="utf-8")
    migrate(config.database_path)
    load_or_create_signing_key(config.signing_key_path)
    return data


def statuses(data: Path) -> dict[str, str]:
    return {c.name: c.status for c in diagnose(data_dir=str(data))}


def test_healthy_data_directory(tmp_path: Path) -> None:
    data = make_data_dir(tmp_path)
    out = io.StringIO()
    assert run_doctor(data_dir=str(data), out=out) == 0, out.getvalue()
    result = statuses(data)
    for name in ("config", "data directory", "database", "schema", "signing key", "port"):
        assert result[name] == OK, out.getvalue()
    assert "federation: not enabled" in out.getvalue()
    assert f"version {SCHEMA_VERSION}" in out.getvalue()
    assert out.getvalue().rstrip().endswith("all good")


def test_corrupted_database(tmp_path: Path) -> None:
    data = make_data_dir(tmp_path)
    db = data / "homeserver.db"
    raw = bytearray(db.read_bytes())
    raw[4096:] = b"\xa5" * (len(raw) - 4096)        # every page after the first is garbage
    db.write_bytes(bytes(raw))
    out = io.StringIO()
    assert run_doctor(data_dir=str(data), out=out) == 1
    assert statuses(data)["database"] == FAIL
    assert "restore" in out.getvalue() and "backup" in out.getvalue()


def test_not_a_database(tmp_path: Path) -> None:
    data = make_data_dir(tmp_path)
    (data / "homeserver.db").write_bytes(b"this is not sqlite" * 100)
    result = statuses(data)
    assert result["database"] == FAIL and result["schema"] == FAIL


def test_database_from_a_newer_build(tmp_path: Path) -> None:
    import sqlite3
    data = make_data_dir(tmp_path)
    conn = sqlite3.connect(data / "homeserver.db")
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    out = io.StringIO()
    assert run_doctor(data_dir=str(data), out=out) == 1
    assert "upgrade pocketserver" in out.getvalue()


def test_missing_signing_key(tmp_path: Path) -> None:
    data = make_data_dir(tmp_path)
    (data / "signing.key").unlink()
    out = io.StringIO()
    assert run_doctor(data_dir=str(data), out=out) == 1
    assert statuses(data)["signing key"] == FAIL
    assert "signing.key is missing" in out.getvalue()
    assert not (data / "signing.key").exists()           # the doctor never creates anything


def test_unparsable_signing_key(tmp_path: Path) -> None:
    data = make_data_dir(tmp_path)
    (data / "signing.key").write_text("ed25519 a_x not-base64!\n")
    assert statuses(data)["signing key"] == FAIL


def test_signing_key_readable_by_others(tmp_path: Path) -> None:
    data = make_data_dir(tmp_path)
    (data / "signing.key").chmod(0o644)
    out = io.StringIO()
    assert run_doctor(data_dir=str(data), out=out) == 1
    assert "chmod 600" in out.getvalue()


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write to any directory")
def test_read_only_data_directory(tmp_path: Path) -> None:
    data = make_data_dir(tmp_path)
    data.chmod(0o555)
    try:
        assert statuses(data)["data directory"] == FAIL
    finally:
        data.chmod(0o755)


def test_missing_data_directory(tmp_path: Path) -> None:
    out = io.StringIO()
    assert run_doctor(data_dir=str(tmp_path / "nowhere"), out=out) == 1
    assert "does not exist" in out.getvalue()
    assert not (tmp_path / "nowhere").exists()


def test_invalid_config_is_reported_with_every_key(tmp_path: Path) -> None:
    data = make_data_dir(tmp_path)
    bad = tmp_path / "bad.toml"
    bad.write_text(f'data_dir = "{data}"\nport = 70000\nlog_level = "loud"\n')
    out = io.StringIO()
    assert run_doctor(config_file=str(bad), out=out) == 1
    text = out.getvalue()
    assert "port:" in text and "log_level:" in text
    assert "database: homeserver.db passes quick_check" in text      # the data dir is still checked


def test_port_taken_by_something_else(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        data = make_data_dir(tmp_path, port=s.getsockname()[1])
        out = io.StringIO()
        assert run_doctor(data_dir=str(data), out=out) == 1
    assert "cannot listen on 127.0.0.1" in out.getvalue()


@pytest.fixture
def versions_endpoint() -> Iterator[int]:
    """A stand-in for a running server: answers /_matrix/client/versions."""
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = json.dumps({"versions": ["v1.11"]}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    httpd = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd.server_address[1]
    httpd.shutdown()
    httpd.server_close()


def test_port_used_by_a_running_server_is_fine(tmp_path: Path, versions_endpoint: int) -> None:
    data = make_data_dir(tmp_path, port=versions_endpoint)
    out = io.StringIO()
    assert run_doctor(data_dir=str(data), out=out) == 0, out.getvalue()
    assert "already serving" in out.getvalue()


def test_cli_exit_codes(tmp_path: Path) -> None:
    data = make_data_dir(tmp_path)
    cmd = [sys.executable, "-m", "pocketserver"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("POCKETSERVER_")}
    ok = subprocess.run(cmd + ["doctor", "--data-dir", str(data)], capture_output=True, text=True,
                        cwd=ROOT, timeout=60, env=env)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "all good" in ok.stdout
    (data / "signing.key").chmod(0o640)
    bad = subprocess.run(cmd + ["--log-level", "debug", "doctor", "--data-dir", str(data)],
                         capture_output=True, text=True, cwd=ROOT, timeout=60, env=env)
    assert bad.returncode == 1 and "[FAIL] signing key" in bad.stdout


def test_log_level_before_or_after_any_command(tmp_path: Path) -> None:
    """--log-level is global: before the command, after it, and with the default `serve` left out."""
    data = make_data_dir(tmp_path)
    cmd = [sys.executable, "-m", "pocketserver"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("POCKETSERVER_")}
    for args in (["--log-level", "debug", "user", "list"], ["user", "list", "--log-level", "debug"]):
        result = subprocess.run(cmd + args + ["--data-dir", str(data)], capture_output=True, text=True,
                                cwd=ROOT, timeout=60, env=env)
        assert result.returncode == 0 and " DEBUG " in result.stderr, (args, result.stderr[-2000:])
    quiet = subprocess.run(cmd + ["user", "list", "--log-level", "error", "--data-dir", str(data)],
                           capture_output=True, text=True, cwd=ROOT, timeout=60, env=env)
    assert quiet.returncode == 0 and quiet.stderr == ""
    serve_help = subprocess.run(cmd + ["--log-level", "info", "--help"], capture_output=True, text=True,
                                cwd=ROOT, timeout=60, env=env)
    assert serve_help.returncode == 0 and "--log-level" in serve_help.stdout


def test_a_full_disk_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Under 16 MiB free the server is about to refuse writes: a failure, not a warning before
    "all good" (a systemd ExecStartPre check then stops)."""
    import shutil
    from collections import namedtuple
    data = make_data_dir(tmp_path)
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10 << 30, (10 << 30) - (1 << 20), 1 << 20))
    assert statuses(data)["disk"] == FAIL
    assert run_doctor(data_dir=str(data), out=io.StringIO()) == 1
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10 << 30, 0, 512 << 20))
    assert statuses(data)["disk"] == WARN
