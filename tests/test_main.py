"""The command line: first run, user and token management, backup, config errors, stopping."""
from __future__ import annotations

import asyncio
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
from nio import AsyncClient, LoginResponse, SyncResponse

from pocketserver.__main__ import parse_duration
from tests.conftest import ROOT, start_server


def run_cli(*args: str, stdin: str | None = None, env: dict[str, str] | None = None):
    return subprocess.run([sys.executable, "-m", "pocketserver", *args], input=stdin, capture_output=True,
                          text=True, cwd=ROOT, timeout=60, env=env)


def test_durations() -> None:
    assert parse_duration("90") == 90 and parse_duration("30m") == 1800 and parse_duration("7d") == 604800


def test_help_for_every_subcommand() -> None:
    for args in (["--help"], ["serve", "--help"], ["user", "add", "--help"], ["token", "create", "--help"],
                 ["backup", "--help"]):
        result = run_cli(*args)
        assert result.returncode == 0 and "usage: pocketserver" in result.stdout


def test_invalid_config_fails_with_key_named(tmp_path: Path) -> None:
    result = run_cli("serve", "--data-dir", str(tmp_path), "--port", "70000")
    assert result.returncode == 2 and "port:" in result.stderr


def test_user_and_token_commands_offline(tmp_path: Path) -> None:
    dd = str(tmp_path / "d")
    assert run_cli("user", "add", "Anna", "--admin", "--password-file", "/dev/stdin", "--data-dir", dd,
                   stdin="pw\n").returncode == 0
    again = run_cli("user", "add", "anna", "--password-file", "/dev/stdin", "--data-dir", dd, stdin="pw\n")
    assert again.returncode == 1 and "already taken" in again.stderr
    bad = run_cli("user", "add", "bad name", "--password-file", "/dev/stdin", "--data-dir", dd, stdin="pw\n")
    assert bad.returncode == 1
    listed = run_cli("user", "list", "--data-dir", dd)
    assert "[admin]" in listed.stdout and ":" in listed.stdout

    token = run_cli("token", "create", "--uses", "2", "--expires", "1d", "--data-dir", dd).stdout.strip()
    assert token
    listed = run_cli("token", "list", "--data-dir", dd).stdout
    assert token in listed and "0/2 used" in listed
    assert run_cli("token", "revoke", token, "--data-dir", dd).returncode == 0
    assert token not in run_cli("token", "list", "--data-dir", dd).stdout
    assert run_cli("token", "revoke", token, "--data-dir", dd).returncode == 1


async def test_first_run_and_hot_backup(tmp_path: Path) -> None:
    server = start_server(tmp_path)
    try:
        async with aiohttp.ClientSession() as http:
            await server.register_shared_secret(http, "backup-user", "pw")
        copy = tmp_path / "copy.db"
        result = server.cli("backup", str(copy))
        assert result.returncode == 0, result.stderr
        conn = sqlite3.connect(copy)
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("SELECT user_id FROM users").fetchall() == [("@backup-user:test.local",)]
        conn.close()
        assert server.cli("backup", str(copy)).returncode == 1    # never overwrites
    finally:
        assert server.stop() == 0
    assert (server.data_dir / "signing.key").read_text().startswith("ed25519 a_")
    assert (server.data_dir / "media").is_dir()


def test_no_config_first_run_writes_config(tmp_path: Path) -> None:
    import os
    import signal
    import time
    import urllib.request
    from tests.conftest import free_port
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "pocketserver", "--host", "127.0.0.1", "--port", str(port)],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT),
                                 "POCKETSERVER_REGISTRATION_SHARED_SECRET": "first-run-secret"})
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/_matrix/client/versions", timeout=1):
                    break
            except OSError:
                assert time.monotonic() < deadline and proc.poll() is None
                time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0
    data = tmp_path / "pocketserver-data"
    assert {p.name for p in data.iterdir()} >= {"homeserver.db", "signing.key", "media", "pocketserver.toml"}
    assert "Put this homeserver URL into your Matrix client" in out and "user add" in out
    assert f"port = {port}" in (data / "pocketserver.toml").read_text()
    # The config holds the secret given in the environment: it and the data directory are the
    # server's user's alone (the signing key too).
    assert 'registration_shared_secret = "first-run-secret"' in (data / "pocketserver.toml").read_text()
    assert {name: oct((data / name).stat().st_mode & 0o777) for name in ("pocketserver.toml", "signing.key")} == {
        "pocketserver.toml": "0o600", "signing.key": "0o600"}
    assert oct(data.stat().st_mode & 0o777) == "0o700"


def test_main_leaves_the_garbage_collector_on(tmp_path: Path) -> None:
    """main() turns the GC off while it imports; it is on again once a command returns."""
    import gc

    from pocketserver.__main__ import main
    assert main(["backup", str(tmp_path / "copy.db"), "--data-dir", str(tmp_path / "none")]) == 1
    assert gc.isenabled()


def test_a_client_connecting_during_start_up_is_answered(tmp_path: Path) -> None:
    """The port is bound before the app is built: a connection made while the server starts waits
    in the listen queue and gets its answer once the server is ready (it is not refused)."""
    import socket
    import time

    from tests.conftest import free_port, stop_process, write_config
    port = free_port()
    config = write_config(tmp_path / "pocketserver.toml", tmp_path / "data", port)
    process = subprocess.Popen([sys.executable, "-m", "pocketserver", "serve", "--config", str(config)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                conn = socket.create_connection(("127.0.0.1", port), timeout=30)
                break
            except ConnectionRefusedError:
                assert time.monotonic() < deadline and process.poll() is None
                time.sleep(0.002)
        with conn:
            conn.sendall(b"GET /_matrix/client/versions HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            reply = b""
            while chunk := conn.recv(65536):
                reply += chunk
        assert reply.startswith(b"HTTP/1.1 200") and b'"versions"' in reply

        other = write_config(tmp_path / "other.toml", tmp_path / "other-data", port)    # the same port
        busy = run_cli("serve", "--config", str(other))
        assert busy.returncode == 1 and f"cannot listen on 127.0.0.1 port {port}" in busy.stderr
    finally:
        stop_process(process)


def test_generated_registration_tokens_can_be_given_to_the_command_line() -> None:
    from pocketserver.accounts.registration import generate_registration_token, is_valid_registration_token
    tokens = [generate_registration_token() for _ in range(2000)]
    assert not [t for t in tokens if t.startswith("-")]      # one in 64 would have read as an option
    assert all(is_valid_registration_token(t) and len(t) == 16 for t in tokens) and len(set(tokens)) == 2000


async def test_stopping_answers_long_polls_at_once(tmp_path: Path) -> None:
    """SIGTERM while a client long-polls /sync: the poll is answered at once (nothing new, as at
    its timeout) and the server exits cleanly, instead of holding on for Hypercorn's graceful
    timeout (10 s) and then answering the poll with a 500."""
    server = start_server(tmp_path)
    client = AsyncClient(server.base_url, "sleeper")
    try:
        async with aiohttp.ClientSession() as http:
            await server.register_shared_secret(http, "sleeper", "sleeper-pw")
        assert isinstance(await client.login("sleeper-pw"), LoginResponse)
        first = await client.sync(timeout=0)
        assert isinstance(first, SyncResponse)
        polling = asyncio.create_task(client.sync(timeout=60_000, since=first.next_batch))
        await asyncio.sleep(1)
        assert not polling.done()                   # asleep on the server

        started = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        answer = await asyncio.wait_for(polling, 5)
        assert isinstance(answer, SyncResponse), answer
        assert answer.rooms.join == {}
        assert await asyncio.to_thread(server.process.wait, 5) == 0
        assert time.monotonic() - started < 5
    finally:
        await client.close()
        server.stop()


def test_open_files_limit_is_raised_and_idle_connections_time_out() -> None:
    """The soft limit on open files goes up to the hard one (capped), as Synapse raises it; and
    the read timeout that closes an idle HTTP/2 connection outlasts the longest long-poll."""
    import resource

    from pocketserver import __main__ as cli
    from pocketserver.sync.sync import MAX_TIMEOUT_MS
    assert cli.READ_TIMEOUT_S > MAX_TIMEOUT_MS / 1000 + 60
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))
        raised = cli.raise_open_files_limit()
        expected = cli.OPEN_FILES_CAP if hard == resource.RLIM_INFINITY else min(hard, cli.OPEN_FILES_CAP)
        assert raised == expected == resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


async def test_backups_from_an_odd_path_under_writes_and_into_nowhere(tmp_path: Path) -> None:
    """A data directory named with `#` backs up (its path was read as a URI fragment: an empty
    copy, reported as done); a copy taken while the server writes is whole; a target in a missing
    directory is a one-line error and leaves nothing behind."""
    import asyncio
    (tmp_path / "fam#1").mkdir()
    server = start_server(tmp_path / "fam#1")
    try:
        async with aiohttp.ClientSession() as http:
            user = await server.register_shared_secret(http, "writer", "pw")
            headers = {"Authorization": f"Bearer {user['access_token']}"}
            async with http.post(f"{server.base_url}/_matrix/client/v3/createRoom", json={}, headers=headers) as r:
                room = (await r.json())["room_id"]

            async def keep_writing() -> None:
                for n in range(200):
                    async with http.put(f"{server.base_url}/_matrix/client/v3/rooms/{room}/send/m.room.message/{n}",
                                        json={"msgtype": "m.text", "body": str(n)}, headers=headers) as r:
                        assert r.status == 200

            writing = asyncio.create_task(keep_writing())
            copy = tmp_path / "copy.db"
            result = await asyncio.to_thread(server.cli, "backup", str(copy))
            await writing
        assert result.returncode == 0, result.stderr
        conn = sqlite3.connect(copy)
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("SELECT COUNT(*) FROM users").fetchone()[0] == 1
        conn.close()
        assert not (tmp_path / "fam").exists()
        missing = server.cli("backup", str(tmp_path / "no-such-dir" / "copy.db"))
        assert missing.returncode == 1 and missing.stderr.startswith("error: no directory"), missing.stderr
        assert "Traceback" not in missing.stderr
    finally:
        assert server.stop() == 0


def test_a_start_that_fails_exits_instead_of_hanging(tmp_path: Path) -> None:
    """A database the server cannot start on (here a table gone): the process says so and exits 1,
    letting go of the port and the lock, instead of hanging with the database's threads alive."""
    from tests.conftest import free_port, write_config
    config = write_config(tmp_path / "pocketserver.toml", tmp_path / "data", free_port())
    assert run_cli("user", "add", "x", "--password-file", "/dev/stdin", "--config", str(config),
                   stdin="pw\n").returncode == 0
    conn = sqlite3.connect(tmp_path / "data" / "homeserver.db")
    conn.execute("DROP TABLE stream_positions")
    conn.commit()
    conn.close()
    result = subprocess.run([sys.executable, "-m", "pocketserver", "serve", "--config", str(config)],
                            capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert result.returncode == 1
    assert "error: the server could not start" in result.stderr and "stream_positions" in result.stderr


def test_commands_neither_conjure_a_server_nor_a_new_signing_key(tmp_path: Path) -> None:
    """`user list` on a data directory with no database is an error, not a new empty server; and a
    database whose signing key is gone is refused by every command, not given a new identity."""
    typo = tmp_path / "typo"
    listed = run_cli("user", "list", "--data-dir", str(typo))
    assert listed.returncode == 1 and "error: no database at" in listed.stderr
    assert not (typo / "homeserver.db").exists() and not (typo / "signing.key").exists()
    data = tmp_path / "data"
    assert run_cli("user", "add", "x", "--password-file", "/dev/stdin", "--data-dir", str(data),
                   stdin="pw\n").returncode == 0
    (data / "signing.key").unlink()
    from tests.conftest import free_port
    for args in (("user", "list"), ("serve", "--host", "127.0.0.1", "--port", str(free_port()))):
        result = run_cli(*args, "--data-dir", str(data))
        assert result.returncode == 1 and "signing key" in result.stderr and "is missing" in result.stderr, result
        assert "Traceback" not in result.stderr
    assert not (data / "signing.key").exists()
    (data / "signing.key").write_text("not a key\n")
    result = run_cli("user", "list", "--data-dir", str(data))
    assert result.returncode == 1 and "is not a signing key" in result.stderr and "Traceback" not in result.stderr


def test_the_server_name_cannot_change_once_in_use(tmp_path: Path) -> None:
    """A data directory used as first.example refuses to serve, or be managed, as second.example
    (its user IDs and rooms carry the name; README, "server_name"): no second @alice appears."""
    import os
    from tests.conftest import free_port
    data = str(tmp_path / "data")
    first = {**os.environ, "POCKETSERVER_SERVER_NAME": "first.example"}
    second = {**os.environ, "POCKETSERVER_SERVER_NAME": "second.example"}
    assert run_cli("user", "add", "alice", "--password-file", "/dev/stdin", "--data-dir", data, stdin="pw\n",
                   env=first).returncode == 0
    added = run_cli("user", "add", "alice", "--password-file", "/dev/stdin", "--data-dir", data, stdin="pw\n",
                    env=second)
    assert added.returncode == 1 and "belongs to the server 'first.example'" in added.stderr, added
    served = run_cli("serve", "--host", "127.0.0.1", "--port", str(free_port()), "--data-dir", data, env=second)
    assert served.returncode == 1 and "belongs to the server 'first.example'" in served.stderr, served
    listed = run_cli("user", "list", "--data-dir", data, env=first)
    assert listed.returncode == 0 and listed.stdout.split() == ["@alice:first.example"]


def test_the_welcome_suggests_commands_that_reach_this_server(tmp_path: Path) -> None:
    """Started with --config, the suggested `user add` names that config (its server_name may be
    there alone); without one, the data directory."""
    from pocketserver.__main__ import _welcome
    from pocketserver.config import load
    config_file = tmp_path / "ext.toml"
    config_file.write_text(f'server_name = "family.example"\ndata_dir = "{tmp_path / "ext"}"\n'
                           'lan_discovery = false\n')
    config = load(str(config_file), environ={})
    assert f"user add alice --admin --config {config_file}" in _welcome(config, False, str(config_file))
    assert f"user add alice --admin --data-dir {tmp_path / 'ext'}" in _welcome(config, False)


def test_command_line_mistakes_are_one_line_errors(tmp_path: Path) -> None:
    """An empty password file, a token made twice, counts and durations past any use: a message,
    exit 1 or 2, no traceback."""
    data = str(tmp_path / "data")
    empty = tmp_path / "empty"
    empty.write_text("")
    cases = [(("user", "add", "x", "--password-file", str(empty)), "the password is empty"),
             (("token", "create", "--token", "dup"), None),
             (("token", "create", "--token", "dup"), "exists already"),
             (("token", "create", "--uses", "99999999999999999999"), "--uses must be between"),
             (("token", "create", "--expires", "99999999999999w"), "more than 100 years"),
             (("media", "purge", "--older-than", "99999999999999999"), "--older-than must be between")]
    for args, message in cases:
        result = run_cli(*args, "--data-dir", data)
        assert "Traceback" not in result.stderr + result.stdout, (args, result.stderr)
        if message is None:
            assert result.returncode == 0, result.stderr
        else:
            assert result.returncode in (1, 2) and message in result.stderr + result.stdout, (args, result)
