"""The pocketserver command line: serve, user, token, backup.

One entry point for `python -m pocketserver`, the installed script and the frozen executable.
"""
from __future__ import annotations

import argparse
import gc
import logging
import re
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Awaitable, Callable

from pocketserver import __version__
from pocketserver.logging_setup import LEVELS, configure_logging

if TYPE_CHECKING:
    import socket

    from pocketserver.config import Config

# Nothing heavy is imported at module level, not even asyncio: main() first asks for the modules
# serving needs to be read ahead, then turns the cyclic GC off before the imports (Quart, the
# whole server) run; see main().

log = logging.getLogger("pocketserver")


def _add_config_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", metavar="FILE", help="TOML config file (default: DATA_DIR/pocketserver.toml)")
    p.add_argument("--data-dir", metavar="DIR", help="data directory (default ./pocketserver-data)")
    _add_log_level(p, argparse.SUPPRESS)


def _add_log_level(p: argparse.ArgumentParser, default: str | None) -> None:
    # SUPPRESS on subcommands, so their default does not erase a --log-level given before them.
    p.add_argument("--log-level", choices=LEVELS, default=default,
                   help="debug, info, warning or error (default: the config's log_level, info)")


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The command line parser; with `command`, only that subcommand's parser is built.

    Building all of them costs ~2 ms of every start (argparse looks up a translation for each
    help string), and serving needs only its own.
    """
    parser = argparse.ArgumentParser(prog="pocketserver",
                                     description="A small Matrix homeserver in one executable.")
    parser.add_argument("--version", action="version", version=f"pocketserver {__version__}")
    _add_log_level(parser, None)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, add in _SUBPARSERS.items():
        if command is None or command == name:
            add(sub)
    return parser


def _add_serve_parser(sub: Any) -> None:
    serve = sub.add_parser("serve", help="run the homeserver (the default command)")
    _add_serve_flags(serve)


# Spec: client-server-api, "Account moderation". Each action: the flag it sets, and its help.
MODERATION_ACTIONS = {
    "lock": ("locked", True, "lock an account: its sessions stay, but every request is refused until unlocked"),
    "unlock": ("locked", False, "unlock a locked account"),
    "suspend": ("suspended", True, "suspend an account: it can read, leave rooms and log out, not join, "
                                   "invite, send or change its profile"),
    "unsuspend": ("suspended", False, "lift a suspension"),
}


def _add_user_parser(sub: Any) -> None:
    user = sub.add_parser("user", help="manage local users")
    user_sub = user.add_subparsers(dest="user_command", metavar="ACTION", required=True)
    add = user_sub.add_parser("add", help="create a user")
    add.add_argument("name", help="the user name (localpart), e.g. alice")
    add.add_argument("--admin", action="store_true", help="make the user a server admin")
    add.add_argument("--password-file", metavar="F", help="read the password from F (else prompt)")
    _add_config_flags(add)
    lst = user_sub.add_parser("list", help="list users")
    _add_config_flags(lst)
    passwd = user_sub.add_parser("passwd", help="set a user's password (logs out their devices)")
    passwd.add_argument("name")
    passwd.add_argument("--password-file", metavar="F", help="read the password from F (else prompt)")
    _add_config_flags(passwd)
    deact = user_sub.add_parser("deactivate", help="deactivate a user and log out every device")
    deact.add_argument("name")
    _add_config_flags(deact)
    for action, (_, _, help_text) in MODERATION_ACTIONS.items():
        moderate = user_sub.add_parser(action, help=help_text)
        moderate.add_argument("name")
        _add_config_flags(moderate)


def _add_token_parser(sub: Any) -> None:
    token = sub.add_parser("token", help="manage registration tokens")
    token_sub = token.add_subparsers(dest="token_command", metavar="ACTION", required=True)
    create = token_sub.add_parser("create", help="create a registration token")
    create.add_argument("--uses", type=int, metavar="N", help="how many registrations it allows (default unlimited)")
    create.add_argument("--expires", metavar="DURATION", help="lifetime such as 7d, 12h, 30m (default never)")
    create.add_argument("--token", metavar="T", help="use this token text instead of a random one")
    _add_config_flags(create)
    tlist = token_sub.add_parser("list", help="list registration tokens")
    _add_config_flags(tlist)
    revoke = token_sub.add_parser("revoke", help="delete a registration token")
    revoke.add_argument("token")
    _add_config_flags(revoke)


def _add_backup_parser(sub: Any) -> None:
    backup = sub.add_parser("backup", help="write a consistent copy of the database (safe while serving)")
    backup.add_argument("file", help="where to write the copy (must not exist)")
    _add_config_flags(backup)


def _add_doctor_parser(sub: Any) -> None:
    doctor = sub.add_parser("doctor", help="check the data directory, database, signing key, disk and port")
    _add_config_flags(doctor)


def _add_discover_parser(sub: Any) -> None:
    disc = sub.add_parser("discover", help="list the pocketservers announced on the LAN (mDNS)")
    disc.add_argument("--timeout", type=float, default=3.0, metavar="S", help="seconds to listen (default 3)")
    disc.add_argument("--json", action="store_true", help="print the servers found as JSON")


def _add_media_parser(sub: Any) -> None:
    from pocketserver.media import add_media_parser
    add_media_parser(sub, _add_config_flags)


_SUBPARSERS: dict[str, Callable[[Any], None]] = {
    "serve": _add_serve_parser, "user": _add_user_parser, "token": _add_token_parser,
    "backup": _add_backup_parser, "doctor": _add_doctor_parser, "discover": _add_discover_parser,
    "media": _add_media_parser}


def _add_serve_flags(p: argparse.ArgumentParser) -> None:
    _add_config_flags(p)
    p.add_argument("--host", help="listen address (default 0.0.0.0)")
    p.add_argument("--port", type=int, help="listen port (default 8008)")
    p.add_argument("--server-name", help="the server name in user IDs (default: host name)")


MAX_DURATION_S = 100 * 365 * 86400
MAX_COUNT = 2**31 - 1     # a count the command line takes (--uses): far beyond any use, within SQLite's integers


def parse_duration(text: str) -> int:
    """Seconds in a duration like 90s, 30m, 12h, 7d or 2w."""
    m = re.fullmatch(r"\s*(\d+)\s*([smhdw]?)\s*", text)
    if not m:
        raise ValueError(f"not a duration: {text!r} (use e.g. 30m, 12h, 7d)")
    unit = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}[m.group(2)]
    seconds = int(m.group(1)) * unit
    if seconds > MAX_DURATION_S:
        raise ValueError(f"{text!r} is more than 100 years")
    return seconds


def _load_config(args: argparse.Namespace) -> Config:
    from pocketserver.config import load
    flags = {"data_dir": getattr(args, "data_dir", None), "host": getattr(args, "host", None),
             "port": getattr(args, "port", None), "server_name": getattr(args, "server_name", None),
             "log_level": getattr(args, "log_level", None)}
    return load(args.config, flags=flags)


def _read_password(args: argparse.Namespace) -> str:
    if args.password_file:
        lines = Path(args.password_file).read_text(encoding="utf-8").splitlines()
        password = lines[0] if lines else ""
    else:
        import getpass
        password = getpass.getpass("Password: ")
        if getpass.getpass("Password again: ") != password:
            raise SystemExit("error: the passwords do not match")
    if not password:
        raise SystemExit("error: the password is empty")
    return password


def _run_with_server(config: Config, action: Callable[[Any], Awaitable[int]]) -> int:
    """Run `action(server)` with the database open, for the commands that work offline."""
    import asyncio

    from pocketserver.server import Server

    async def run() -> int:
        from pocketserver.storage.identity import claim_server_name
        server = Server(config)
        await server.db.open()
        try:
            await claim_server_name(server.db, config.server_name)
            return await action(server)
        finally:
            await server.db.close()
    return asyncio.run(run())


def _no_database(config: Config) -> bool:
    """For commands that read or change what a server holds: a data directory without a database
    is a mistyped --data-dir (or config), not a server to create empty; say so."""
    if config.database_path.exists():
        return False
    print(f"error: no database at {config.database_path}: is --data-dir (or --config) the server's? "
          "`user add` and `token create` start a new one; `serve` does too", file=sys.stderr)
    return True


def _user_command(args: argparse.Namespace, config: Config) -> int:
    from pocketserver.storage import accounts as store
    user_id = f"@{getattr(args, 'name', '').lower()}:{config.server_name}"
    if args.user_command != "add" and _no_database(config):
        return 1

    async def action(server: Any) -> int:
        if args.user_command == "add":
            password = _read_password(args)
            await server.registration.create_user(args.name.lower(), password, admin=args.admin)
            print(f"created {user_id}{' (admin)' if args.admin else ''}")
        elif args.user_command == "list":
            for u in await store.list_users(server.db):
                flags = [f for f, on in (("admin", u.admin), ("guest", u.is_guest), ("deactivated", u.deactivated),
                                         ("locked", u.locked), ("suspended", u.suspended)) if on]
                print(u.user_id + (f"  [{', '.join(flags)}]" if flags else ""))
        elif await store.get_user(server.db, user_id) is None:
            print(f"error: no such user {user_id}", file=sys.stderr)
            return 1
        elif args.user_command == "passwd":
            password_hash = await server.hasher.hash(_read_password(args))

            async def job(tx: Any) -> None:
                await store.set_password_hash(tx, user_id, password_hash)
                await server.sessions.delete_devices(tx, user_id, await store.list_device_ids_tx(tx, user_id))
            await server.db.write(job)
            print(f"password changed for {user_id}; its devices were logged out")
        elif args.user_command == "deactivate":
            await _deactivate(server, user_id, serving)
        elif args.user_command in MODERATION_ACTIONS:
            flag, value, _ = MODERATION_ACTIONS[args.user_command]
            await server.db.write(lambda tx: store.set_moderation(tx, user_id, **{flag: value}))
            print(f"{args.user_command}ed {user_id}")
        return 0

    if args.user_command != "deactivate":
        return _run_with_server(config, action)
    from pocketserver import serving_lock
    with serving_lock.offline(config.data_path) as serving:    # no server starts meanwhile
        return _run_with_server(config, action)


async def _deactivate(server: Any, user_id: str, serving: Any) -> None:
    """Deactivate here, or, while a server runs on the data directory (`serving`), only the account:
    that server takes the user out of their rooms, whose state it keeps (serving_lock)."""
    from pocketserver import serving_lock
    await server.account.deactivate_user(user_id, erase=False, leave_rooms=serving is None)
    if serving is None:
        print(f"deactivated {user_id}")
    elif serving_lock.signal_server(serving.pid):
        print(f"deactivated {user_id}; the running server (process {serving.pid}) takes them out of their rooms")
    else:
        print(f"deactivated {user_id}; the server takes them out of their rooms when it next starts",
              file=sys.stderr)


def _token_command(args: argparse.Namespace, config: Config) -> int:
    from pocketserver.storage import registration_tokens as tokens
    if args.token_command != "create" and _no_database(config):
        return 1

    async def action(server: Any) -> int:
        if args.token_command == "create":
            if args.uses is not None and not 1 <= args.uses <= MAX_COUNT:
                raise SystemExit(f"error: --uses must be between 1 and {MAX_COUNT}")
            expiry = None
            if args.expires:
                try:
                    expiry = int((time.time() + parse_duration(args.expires)) * 1000)
                except ValueError as exc:
                    raise SystemExit(f"error: {exc}") from None
            token = await server.registration.create_token(args.token, args.uses, expiry)
            print(token)
            if not config.enable_registration:
                print("note: registration is off; set enable_registration = true in the config "
                      "(or POCKETSERVER_ENABLE_REGISTRATION=true) so people can sign up with this token",
                      file=sys.stderr)
        elif args.token_command == "list":
            now = int(time.time() * 1000)
            for t in await tokens.list_registration_tokens(server.db):
                uses = "unlimited" if t.uses_allowed is None else f"{t.completed}/{t.uses_allowed} used"
                expiry = "never expires" if t.expiry_ts is None else time.strftime(
                    "expires %Y-%m-%d %H:%M", time.localtime(t.expiry_ts / 1000))
                state = "" if t.usable(now) else "  [not usable]"
                print(f"{t.token}  {uses}  {expiry}{state}")
        elif args.token_command == "revoke":
            if not await server.db.write(lambda tx: tokens.delete_registration_token(tx, args.token)):
                print(f"error: no such token {args.token}", file=sys.stderr)
                return 1
            print(f"revoked {args.token}")
        return 0

    return _run_with_server(config, action)


def _backup_command(args: argparse.Namespace, config: Config) -> int:
    from pocketserver.storage.database import backup
    if not config.database_path.exists():
        print(f"error: no database at {config.database_path}", file=sys.stderr)
        return 1
    import sqlite3
    try:
        backup(config.database_path, Path(args.file))
    except (OSError, sqlite3.Error) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"backed up {config.database_path} to {args.file}")
    return 0


def _first_run(config: Config, args: argparse.Namespace) -> bool:
    """Write the data directory's config file on the first start without one."""
    import os

    from pocketserver.config import CONFIG_FILE_NAME, DATA_DIR_MODE, render_toml
    if args.config:
        return False
    path = config.data_path / CONFIG_FILE_NAME
    if path.exists():
        return False
    config.data_path.mkdir(mode=DATA_DIR_MODE, parents=True, exist_ok=True)
    # 0600: secrets given in the environment at the first start (the shared secrets) are written here.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(render_toml(config, skip=("data_dir",)))
    return True


def _welcome(config: Config, first_run: bool, config_file: str | None = None) -> str:
    data = config.data_path.resolve()
    exe = "pocketserver" if getattr(sys, "frozen", False) or "pocketserver" in Path(sys.argv[0]).name \
        else f"{Path(sys.executable).name} -m pocketserver"
    # The commands must reach this server: with its config file when it has one (its server_name
    # may be there alone), else with its data directory.
    dd = f" --config {config_file}" if config_file else \
        f" --data-dir {config.data_dir}" if config.data_dir != "pocketserver-data" else ""
    lines = [f"pocketserver {__version__} is serving {config.server_name}",
             f"  Put this homeserver URL into your Matrix client: {config.client_base_url()}",
             f"  Data directory: {data}" + ("  (created now, with its config file)" if first_run else "")]
    from pocketserver.discovery.announce import welcome_line
    lines.append(welcome_line(config))
    lines += ["  Create the first user:   " + f"{exe} user add alice --admin{dd}",
              "  Invite people to sign up: " + f"{exe} token create --uses 1{dd}"
              + ("" if config.enable_registration else "   (and set enable_registration = true)")]
    return "\n".join(lines)


def _writable(config: Config) -> bool:
    """Whether the data directory and the database in it can be written (a read-only mount, a chmod)."""
    import os
    database = config.database_path
    return os.access(config.data_path, os.W_OK) and (not database.exists() or os.access(database, os.W_OK))


LISTEN_BACKLOG = 100   # Hypercorn's default
# No byte from a client for this long closes its connection. HTTP/1.1 connections close when idle
# after keep_alive_timeout (75 s), but Hypercorn never times out an HTTP/2 connection without
# streams (cleartext HTTP/2 by prior knowledge, which no Matrix client uses), so a device could
# hold descriptors for ever. Longer than the longest request: a /sync long-poll (5 minutes).
READ_TIMEOUT_S = 600
OPEN_FILES_CAP = 65_536


def listen(config: Config) -> socket.socket:
    """Bind and listen on the configured address, before the slow part of start-up.

    A client that connects while the app is still being built waits in the listen queue and is
    answered as soon as it is ready, instead of being refused and retrying later (systemd's socket
    activation gives the same). Set up as Hypercorn would set up its own socket.
    """
    import socket
    sock = socket.socket(socket.AF_INET6 if ":" in config.host else socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind((config.host, config.port))
        sock.listen(LISTEN_BACKLOG)
    except OSError:
        sock.close()
        raise
    sock.setblocking(False)
    sock.set_inheritable(True)
    return sock


def serve(config: Config, first_run: bool, listener: socket.socket, config_file: str | None = None) -> int:
    import asyncio
    import signal

    from hypercorn.asyncio import serve as hypercorn_serve
    from hypercorn.config import Config as HypercornConfig
    from hypercorn.utils import LifespanFailureError

    from pocketserver import serving_lock
    from pocketserver.app import create_app
    from pocketserver.server import limit_malloc_arenas

    limit_malloc_arenas()   # before create_app: no thread may have started yet
    app = create_app(config)
    hc = HypercornConfig()
    hc.bind = [f"fd://{listener.detach()}"]    # Hypercorn takes the socket over
    hc.backlog = LISTEN_BACKLOG
    hc.accesslog = None
    hc.errorlog = logging.getLogger("hypercorn.error")
    hc.graceful_timeout = 10
    hc.keep_alive_timeout = 75
    hc.read_timeout = READ_TIMEOUT_S
    raise_open_files_limit()

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        if serving_lock.WORK_SIGNAL is not None:      # `user deactivate` while the server runs
            loop.add_signal_handler(serving_lock.WORK_SIGNAL, app.config["POCKETSERVER"].finish_deactivations_soon)
        print(_welcome(config, first_run, config_file), flush=True)
        _settle_gc()

        async def stopping() -> None:
            await stop.wait()
            # Hypercorn now waits (up to graceful_timeout) for the requests in flight: the
            # long-polls among them answer at once instead of at the end of their timeout.
            app.config["POCKETSERVER"].begin_stopping()
        await hypercorn_serve(app, hc, shutdown_trigger=stopping)  # type: ignore[arg-type]

    try:
        asyncio.run(run())
    except LifespanFailureError as exc:      # the server's start failed (a damaged database, ...)
        log.error("the server could not start: %s", exc.__cause__ or exc)
        print(f"error: the server could not start: {exc.__cause__ or exc}", file=sys.stderr)
        return 1
    log.info("stopped cleanly")
    return 0


def raise_open_files_limit() -> int | None:
    """Raise the soft limit on open files to the hard one (at most OPEN_FILES_CAP), as Synapse
    does: every client connection is a descriptor, and a soft limit of 1024 is a number of idle
    connections one device can open. Returns the new limit (None where there is no such limit)."""
    try:
        import resource
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        wanted = OPEN_FILES_CAP if hard == resource.RLIM_INFINITY else min(hard, OPEN_FILES_CAP)
        if soft != resource.RLIM_INFINITY and soft < wanted:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
            return wanted
        return soft
    except (ImportError, ValueError, OSError):
        return None


def _settle_gc() -> None:
    """Turn the cyclic GC back on, with everything start-up made moved out of its sight.

    Start-up's ~100k objects (modules, classes, routes) live as long as the process; frozen,
    no full collection walks them again (one took ~30 ms). The few hundred cycles the imports
    left as garbage are not worth a collection on the way to the first response.
    """
    gc.freeze()
    gc.enable()


def main(argv: list[str] | None = None) -> int:
    command, argv = _command_line(list(sys.argv[1:] if argv is None else argv))
    if command == "serve":
        from pocketserver import readahead
        readahead.start()   # before the imports: on a cold start they then find their files read
    # The imports (Quart, the whole server) allocate ~100k objects and would set off collections
    # over and over: measured ~35 ms of every start. serve() turns the GC on once the app is built.
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        return _run(command, argv)
    finally:
        if gc_was_enabled:
            gc.enable()


def _command_line(argv: list[str]) -> tuple[str, list[str]]:
    """The command `argv` asks for ("serve" when it names none), and argv with it filled in."""
    # A global --log-level may come before the command; skip it to find the command.
    lead = argv[2:] if argv[:1] == ["--log-level"] else argv[1:] if argv[:1] and argv[0].startswith(
        "--log-level=") else argv
    if not lead or lead[0] not in tuple(_SUBPARSERS) + ("-h", "--help", "--version"):
        return "serve", argv[:len(argv) - len(lead)] + ["serve"] + lead   # the default command
    return lead[0], argv


def _run(command: str, argv: list[str]) -> int:
    args = build_parser(command if command in _SUBPARSERS else None).parse_args(argv)
    if args.command == "discover":   # reads no config: it only listens on the LAN
        from pocketserver.discovery.browse import discover_command
        return discover_command(args.timeout, args.json)
    if args.command == "doctor":   # before loading the config: checking it is the doctor's job
        from pocketserver.doctor import run_doctor
        configure_logging(args.log_level or "warning")
        return run_doctor(args.config, args.data_dir)
    from pocketserver.config import ConfigError
    try:
        config = _load_config(args)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    configure_logging(config.log_level)
    if args.command == "serve":
        if config.data_path.exists() and not _writable(config):
            # SQLite cannot even open its write-ahead log there; say so instead of a traceback.
            print(f"error: the data directory {config.data_path} is read-only, and the server keeps its "
                  "database there: make it writable (or set data_dir to a writable place) and start again",
                  file=sys.stderr)
            return 1
        from pocketserver import serving_lock
        try:
            serving_lock.hold(config.data_path)     # held until the process ends
        except serving_lock.AlreadyServing as exc:
            print(f"error: {exc}: {config.data_path.resolve()}", file=sys.stderr)
            return 1
        except OSError as exc:
            print(f"error: cannot use the data directory {config.data_path}: {exc.strerror or exc}", file=sys.stderr)
            return 1
        serving_lock.ignore_work_signal()
        try:
            listener = listen(config)       # first: the imports below take most of start-up
        except OSError as exc:
            print(f"error: cannot listen on {config.host} port {config.port}: {exc.strerror or exc}", file=sys.stderr)
            return 1
    from pocketserver.errors import MatrixError
    from pocketserver.server_key import SigningKeyError
    from pocketserver.storage.database import DatabaseError
    try:
        if args.command == "serve":
            return serve(config, _first_run(config, args), listener, args.config)
        if args.command == "user":
            return _user_command(args, config)
        if args.command == "token":
            return _token_command(args, config)
        if args.command == "backup":
            return _backup_command(args, config)
        if args.command == "media":
            return _run_with_server(config, lambda server: server.media.run_purge_command(args))
    except (DatabaseError, MatrixError, SigningKeyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
