"""`pocketserver doctor`: check a data directory and its config, and say what to fix.

Every check only reads: the database is opened read-only, nothing is created or migrated, so the
doctor is safe to run beside a serving pocketserver.
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import sqlite3
import stat
import sys
import tempfile
import tomllib
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, TextIO

from pocketserver.config import CONFIG_FILE_NAME, ENV_PREFIX, KEYS, Config, ConfigError, load

OK, WARN, FAIL, INFO = "ok", "warn", "FAIL", "--"
MIN_FREE_BYTES = 1 << 30          # below 1 GiB of free disk the doctor warns
FULL_BELOW_BYTES = 16 << 20       # below 16 MiB it fails: the server answers writes with 503 soon


@dataclass(frozen=True, slots=True)
class Check:
    """The outcome of one check: a status, what was found and, when not ok, how to fix it."""

    name: str
    status: str
    detail: str
    fix: str = ""


@dataclass(slots=True)
class Context:
    """What the checks share: the config (or the fallback used when it is invalid)."""

    config: Config
    config_ok: bool
    db_exists: bool = False


def _fallback_data_dir(config_file: str | None, data_dir: str | None) -> str:
    """The data directory to inspect when the config does not load, by the usual precedence."""
    if data_dir:
        return data_dir
    if os.environ.get(ENV_PREFIX + "DATA_DIR"):
        return os.environ[ENV_PREFIX + "DATA_DIR"]
    if config_file:
        try:
            value = tomllib.loads(Path(config_file).read_text(encoding="utf-8")).get("data_dir")
            if isinstance(value, str) and value:
                return value
        except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError):
            pass
    return str(KEYS["data_dir"].default)


def check_config(config_file: str | None, data_dir: str | None) -> tuple[Context, Check]:
    """Load and validate the config exactly as `serve` would."""
    try:
        config = load(config_file, flags={"data_dir": data_dir})
    except ConfigError as exc:
        fallback = Config(data_dir=_fallback_data_dir(config_file, data_dir), server_name="localhost")
        return Context(fallback, False), Check("config", FAIL, str(exc),
                                               "correct the keys named above and run the doctor again")
    source = config_file or (config.data_path / CONFIG_FILE_NAME)
    where = f"{source}" if Path(source).exists() else "built-in defaults (no config file yet)"
    return Context(config, True), Check("config", OK, f"valid: {where}; server_name {config.server_name}")


def check_data_dir(ctx: Context) -> Check:
    """The data directory exists, is a directory and accepts new files."""
    path = ctx.config.data_path
    if not path.exists():
        return Check("data directory", FAIL, f"{path} does not exist",
                     "start pocketserver once (it creates the directory), or pass --data-dir")
    if not path.is_dir():
        return Check("data directory", FAIL, f"{path} is not a directory", "pass the right --data-dir")
    try:
        with tempfile.NamedTemporaryFile(dir=path, prefix=".doctor-"):
            pass
    except OSError as exc:
        return Check("data directory", FAIL, f"{path} is not writable: {exc.strerror}",
                     f"give the user running pocketserver write access: chown -R $USER {path}")
    return Check("data directory", OK, f"{path.resolve()} exists and is writable")


def _read_only(path: Path) -> sqlite3.Connection:
    from pocketserver.storage.database import read_only_uri
    return sqlite3.connect(read_only_uri(path), uri=True)


def check_database(ctx: Context) -> Check:
    """PRAGMA quick_check on a read-only connection."""
    path = ctx.config.database_path
    if not path.exists():
        return Check("database", WARN, f"{path} does not exist yet", "pocketserver creates it at first start")
    ctx.db_exists = True
    try:
        conn = _read_only(path)
        try:
            rows = [r[0] for r in conn.execute("PRAGMA quick_check").fetchall()]
        finally:
            conn.close()
    except sqlite3.Error as exc:
        return Check("database", FAIL, f"{path}: {exc}", _restore_hint(ctx))
    if rows != ["ok"]:
        return Check("database", FAIL, f"{path} is damaged: " + "; ".join(rows[:3]), _restore_hint(ctx))
    return Check("database", OK, f"{path.name} passes quick_check")


def _restore_hint(ctx: Context) -> str:
    return (f"stop pocketserver and restore {ctx.config.database_path} from a backup "
            "(`pocketserver backup FILE` makes one); `sqlite3 homeserver.db .recover` may save the rest")


def check_schema(ctx: Context) -> Check:
    """The database's schema version against the migrations this build ships."""
    from pocketserver.storage.database import SCHEMA_VERSION
    if not ctx.db_exists:
        return Check("schema", INFO, f"no database yet; this build creates schema version {SCHEMA_VERSION}")
    try:
        conn = _read_only(ctx.config.database_path)
        try:
            current = conn.execute("PRAGMA user_version").fetchone()[0]
        finally:
            conn.close()
    except sqlite3.Error as exc:
        return Check("schema", FAIL, f"cannot read the schema version: {exc}", _restore_hint(ctx))
    if current > SCHEMA_VERSION:
        return Check("schema", FAIL, f"version {current}, but this build knows only up to {SCHEMA_VERSION}",
                     "the database was used by a newer pocketserver: upgrade pocketserver")
    if current < SCHEMA_VERSION:
        return Check("schema", OK, f"version {current}; migrations up to {SCHEMA_VERSION} "
                     "will be applied at the next start")
    return Check("schema", OK, f"version {current}, as this build expects")


def check_signing_key(ctx: Context) -> Check:
    """The signing key file parses and only its owner can read it."""
    from pocketserver.server_key import SigningKeyError, load_or_create_signing_key
    path = ctx.config.signing_key_path
    if not path.exists():
        if ctx.db_exists:
            return Check("signing key", FAIL, f"{path} is missing, but the database exists",
                         f"restore {path.name} from a backup; a new key changes the server's identity "
                         "to other servers")
        return Check("signing key", WARN, f"{path} does not exist yet", "pocketserver creates it at first start")
    try:
        key = load_or_create_signing_key(path, create=False)       # the file exists: this only reads it
    except (SigningKeyError, OSError) as exc:
        return Check("signing key", FAIL, f"{path} does not parse: {exc}",
                     f"restore {path.name} from a backup (format: 'ed25519 <version> <base64 seed>')")
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        return Check("signing key", FAIL, f"{path} has permissions {mode:04o}; others can read it",
                     f"chmod 600 {path}")
    return Check("signing key", OK, f"{key.key_id} parses, permissions {mode:04o}")


def check_disk(ctx: Context) -> Check:
    """Free space on the data directory's file system."""
    path = ctx.config.data_path
    while not path.exists() and path != path.parent:
        path = path.parent
    try:
        free = shutil.disk_usage(path if path.exists() else Path.cwd()).free
    except OSError as exc:
        return Check("disk", WARN, f"cannot measure free space: {exc}")
    text = f"{free / (1 << 30):.1f} GiB free"
    if free < FULL_BELOW_BYTES:
        return Check("disk", FAIL, f"{free // (1 << 20)} MiB free: the disk is full",
                     "free some space: the server refuses writes (503) until there is room again")
    if free < MIN_FREE_BYTES:
        return Check("disk", WARN, text + " (under 1 GiB)",
                     "free some space: SQLite needs room for its WAL, backups and media")
    return Check("disk", OK, text)


def _answers_versions(host: str, port: int) -> bool:
    target = "127.0.0.1" if host in ("0.0.0.0", "") else "::1" if host == "::" else host
    url_host = f"[{target}]" if ":" in target else target
    try:
        with urllib.request.urlopen(f"http://{url_host}:{port}/_matrix/client/versions", timeout=1) as resp:
            return "versions" in json.loads(resp.read())
    except (OSError, ValueError):
        return False


def check_port(ctx: Context) -> Check:
    """The listen address can be bound, or a Matrix server already answers there."""
    if not ctx.config_ok:
        return Check("port", INFO, "skipped until the config is valid")
    host, port = ctx.config.host, ctx.config.port
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    where = f"{host}:{port}"
    try:
        with socket.socket(family, socket.SOCK_STREAM) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)    # as the server binds
            s.bind((host, port))
    except OSError as exc:
        if _answers_versions(host, port):
            return Check("port", OK, f"{where}: a Matrix server (probably this one) is already serving")
        return Check("port", FAIL, f"cannot listen on {where}: {exc.strerror}",
                     "stop what uses the port (`ss -ltnp`), or set another port / host")
    return Check("port", OK, f"{where} is free")


def check_federation(ctx: Context) -> Check:
    """Federation reachability; federation itself does not exist yet."""
    # TODO: once federation lands, fetch our own /_matrix/key/v2/server through public discovery.
    return Check("federation", INFO, "not enabled")


CHECKS: tuple[Callable[[Context], Check], ...] = (
    check_data_dir, check_database, check_schema, check_signing_key, check_disk, check_port,
    check_federation)


def diagnose(config_file: str | None = None, data_dir: str | None = None) -> list[Check]:
    """Run every check, in order, and return their outcomes."""
    ctx, config_check = check_config(config_file, data_dir)
    return [config_check] + [check(ctx) for check in CHECKS]


def run_doctor(config_file: str | None = None, data_dir: str | None = None,
               out: TextIO | None = None) -> int:
    """Print the checklist; 0 when nothing failed (warnings allowed), 1 otherwise."""
    out = out or sys.stdout
    results = diagnose(config_file, data_dir)
    for c in results:
        print(f"[{c.status:^4}] {c.name}: {c.detail}", file=out)
        if c.fix and c.status in (FAIL, WARN):
            print(f"       fix: {c.fix}", file=out)
    failed = [c.name for c in results if c.status == FAIL]
    print(f"\n{len(failed)} problem(s) to fix: {', '.join(failed)}" if failed else "\nall good", file=out)
    return 1 if failed else 0
