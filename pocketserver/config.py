"""Configuration: built-in defaults < TOML file < POCKETSERVER_<KEY> environment < flags."""
from __future__ import annotations

import dataclasses
import math
import os
import re
import socket
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from pocketserver.ids import is_valid_server_name
from pocketserver.rooms.versions import KNOWN_ROOM_VERSIONS

CONFIG_FILE_NAME = "pocketserver.toml"
# A data directory the server creates is its user's alone: the database holds registration tokens
# and account data, the first-run config may hold the shared secrets (SECURITY.md).
DATA_DIR_MODE = 0o700
ENV_PREFIX = "POCKETSERVER_"


class ConfigError(Exception):
    """The configuration is invalid; the message lists every problem found."""


def default_server_name() -> str:
    """The host's name, lower-cased, when it is a valid server name; else 'localhost'."""
    name = re.sub(r"[^a-z0-9.-]", "-", socket.gethostname().lower()).strip("-.")
    return name if name and is_valid_server_name(name) else "localhost"


def _key(default: Any, doc: str) -> Any:
    """A config key with its default and a one-line description (written into new config files)."""
    return field(default=default, metadata={"doc": doc})


@dataclass(frozen=True, slots=True)
class Config:
    server_name: str = _key("",
        'The domain in user and room IDs; cannot change once users exist. Default: the host name.')
    host: str = _key("0.0.0.0",
        'Address the client API listens on. Default 0.0.0.0 (every interface).')
    port: int = _key(8008,
        'Port of the client API. Default 8008.')
    data_dir: str = _key("pocketserver-data",
        'Where the database, signing key, media and written config live. Default ./pocketserver-data.')
    public_baseurl: str = _key("",
        'The URL clients use to reach this server. Default: derived from the LAN address and port.')
    enable_registration: bool = _key(False,
        'Whether anyone may register through /register. Default false.')
    registration_requires_token: bool = _key(True,
        'With registration on, whether a registration token is required. Default true.')
    registration_shared_secret: str = _key("",
        'Secret for Synapse-compatible shared-secret registration; empty disables it. Default empty.')
    allow_guest_access: bool = _key(False,
        'Whether guests may register (kind=guest). Default false.')
    max_request_bytes: int = _key(1_048_576,
        'Largest request body accepted, in bytes. Default 1 MiB.')
    rc_login_per_second: float = _key(0.17,
        'Login attempts per second allowed per client address and per account. Default 0.17.')
    rc_login_burst: int = _key(5,
        'Burst of login attempts before the rate applies. Default 5.')
    rc_registration_per_second: float = _key(0.17,
        'Registration requests per second allowed per client address. Default 0.17.')
    rc_registration_burst: int = _key(5,
        'Burst of registrations before the rate applies. Default 5.')
    rc_failed_auth_per_second: float = _key(0.17,
        'Failed password checks (login and user-interactive auth) per second per account. Default 0.17.')
    rc_failed_auth_burst: int = _key(5,
        'Burst of failed password checks before the rate applies. Default 5.')
    rc_message_per_second: float = _key(0.2,
        'Events (messages, state, redactions) a user may send per second, as Synapse\'s rc_message. Default 0.2.')
    rc_message_burst: int = _key(10,
        'Burst of events before the rate applies. Default 10.')
    rc_room_creation_per_second: float = _key(0.016,
        'Rooms a user may create per second (about one a minute). Default 0.016.')
    rc_room_creation_burst: int = _key(10,
        'Burst of room creations before the rate applies. Default 10.')
    rc_invites_per_second: float = _key(0.3,
        'Invites a user may send, and a room may see, per second (Synapse\'s per_issuer/per_room). Default 0.3.')
    rc_invites_burst: int = _key(10,
        'Burst of invites sent before the rate applies. Default 10.')
    rc_invites_received_per_second: float = _key(0.003,
        'Invites a user may receive per second (Synapse\'s rc_invites per_user). Default 0.003.')
    rc_invites_received_burst: int = _key(5,
        'Burst of invites received before the rate applies. Default 5.')
    rc_joins_per_second: float = _key(0.1,
        'Rooms a user may join per second (Synapse\'s rc_joins local). Default 0.1.')
    rc_joins_burst: int = _key(10,
        'Burst of joins before the rate applies. Default 10.')
    rc_receipts_per_second: float = _key(10.0,
        'Read receipts and read-marker updates a user may post per second. Default 10.')
    rc_receipts_burst: int = _key(100,
        'Burst of receipts before the rate applies (marking many rooms read at once). Default 100.')
    rc_typing_per_second: float = _key(5.0,
        'Typing notifications a user may send per second. Default 5.')
    rc_typing_burst: int = _key(50,
        'Burst of typing notifications before the rate applies. Default 50.')
    user_directory_search_all_users: bool = _key(False,
        'Whether the user directory finds every local user, not only those sharing a room with the searcher or in public rooms. Default false.')
    turn_uris: str = _key("",
        'Comma-separated TURN server URIs for calls (e.g. "turn:turn.example.org:3478?transport=udp"). Default empty: none.')
    turn_shared_secret: str = _key("",
        'The TURN server\'s shared secret (coturn static-auth-secret), for time-limited credentials. Default empty.')
    turn_username: str = _key("",
        'A fixed TURN username, used when there is no shared secret. Default empty.')
    turn_password: str = _key("",
        'The password of turn_username. Default empty.')
    turn_user_lifetime_ms: int = _key(86_400_000,
        'How long TURN credentials handed to a client stay valid, in ms. Default 86400000 (1 day).')
    turn_allow_guests: bool = _key(True,
        'Whether guests may get TURN credentials. Default true.')
    max_rooms_per_user: int = _key(10_000,
        'Rooms a user may be joined to at once; 0 means no limit. Default 10000.')
    max_devices_per_user: int = _key(1_000,
        'Devices (logged-in sessions) a user may have at once; 0 means no limit. Default 1000.')
    admin_contact: str = _key("",
        'A URI (mailto: or https:) for reaching the admin, sent with "disk full" errors and served at /.well-known/matrix/support. Default: the server\'s address.')
    refreshable_access_token_lifetime_ms: int = _key(300_000,
        'Lifetime of access tokens issued with a refresh token, in ms. Default 300000 (5 min).')
    password_hash_opslimit: int = _key(2,
        'Argon2id passes for password hashes. Default 2.')
    password_hash_memlimit_kib: int = _key(19_456,
        'Argon2id memory per hash in KiB. Default 19456 (19 MiB): ~0.2 s on a Raspberry Pi 4.')
    enable_metrics: bool = _key(False,
        'Serve Prometheus-format counters at /_pocketserver/metrics to loopback callers. Default false.')
    serve_server_wellknown: bool = _key(False,
        'Serve /.well-known/matrix/server delegating to server_name:443. Default false.')
    lan_discovery: bool = _key(True,
        'Announce the server on the LAN over mDNS/DNS-SD (zeroconf). Default true.')
    lan_discovery_interfaces: str = _key("",
        'Comma-separated interface names or addresses to announce on. Default empty: every interface.')
    lan_discovery_name: str = _key("",
        'The name shown to people browsing the LAN. Default: "Pocketserver on <hostname>".')
    default_room_version: str = _key("12",
        'Room version for new rooms. Default "12".')
    log_level: str = _key("info",
        'Logging level: debug, info, warning, error. Default info.')
    writer_max_batch_jobs: int = _key(256,
        'Largest group-commit batch, in jobs. Default 256.')
    max_upload_size: int = _key(52_428_800,
        'Largest media upload in bytes (advertised as m.upload.size). Default 50 MiB.')
    media_quota_per_user_bytes: int = _key(0,
        'Total bytes of media each user may upload; 0 means no quota. Default 0.')
    rc_media_upload_per_second: float = _key(10.0,
        'Media uploads and created media IDs per second allowed per user. Default 10.')
    rc_media_upload_burst: int = _key(50,
        'Burst of media uploads before the rate applies. Default 50.')
    url_preview_enabled: bool = _key(False,
        'Whether /preview_url fetches web pages for link previews (the server then makes outbound requests). Default false.')
    freeze_unauthenticated_media: bool = _key(True,
        'Serve media uploaded from now on only through the authenticated /_matrix/client/v1/media endpoints. Default true.')
    media_retention_local_days: int = _key(0,
        'Delete local media not downloaded for this many days; 0 keeps it forever. Default 0.')
    media_retention_remote_days: int = _key(0,
        'Delete cached remote media not downloaded for this many days; 0 keeps it forever. Default 0.')

    @property
    def data_path(self) -> Path:
        return Path(self.data_dir)

    @property
    def turn_uri_list(self) -> list[str]:
        """The TURN URIs of `turn_uris`, a comma-separated list."""
        return [u.strip() for u in self.turn_uris.split(",") if u.strip()]

    @property
    def database_path(self) -> Path:
        return self.data_path / "homeserver.db"

    @property
    def signing_key_path(self) -> Path:
        return self.data_path / "signing.key"

    @property
    def media_path(self) -> Path:
        return self.data_path / "media"

    def client_base_url(self) -> str:
        """The base URL to give to clients, without a trailing slash."""
        if self.public_baseurl:
            return self.public_baseurl.rstrip("/")
        return f"http://{_reachable_host(self.host)}:{self.port}"

    def admin_contact_uri(self) -> str:
        """Where users can reach the admin (M_RESOURCE_LIMIT_EXCEEDED's admin_contact)."""
        return self.admin_contact or self.client_base_url() + "/"

    def with_overrides(self, **changes: Any) -> "Config":
        return dataclasses.replace(self, **changes)


KEYS: Mapping[str, dataclasses.Field[Any]] = {f.name: f for f in fields(Config)}


def _reachable_host(host: str) -> str:
    """A host clients can connect to: the LAN address when listening on every interface."""
    if host not in ("0.0.0.0", "::", ""):
        return f"[{host}]" if ":" in host else host
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            # No packet is sent: connect() on UDP only selects the outgoing interface.
            s.connect(("192.0.2.1", 9))
            return s.getsockname()[0]
    except OSError:
        return "127.0.0.1"


def _coerce(key: str, value: Any, problems: list[str]) -> Any:
    """Convert a TOML or environment value to the type of the config key."""
    kind = KEYS[key].type
    if isinstance(value, str) and kind != "str":
        text = value.strip().lower()
        if kind == "bool":
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off"):
                return False
            problems.append(f"{key}: expected true or false, got {value!r}")
            return None
        try:
            number = int(text) if kind == "int" else float(text)
        except ValueError:
            problems.append(f"{key}: expected a number, got {value!r}")
            return None
        return _coerce(key, number, problems)
    ok = {
        "str": isinstance(value, str),
        "bool": isinstance(value, bool),
        "int": isinstance(value, int) and not isinstance(value, bool),
        "float": isinstance(value, (int, float)) and not isinstance(value, bool),
    }[str(kind)]
    if not ok:
        problems.append(f"{key}: expected {kind}, got {type(value).__name__} {value!r}")
        return None
    if kind == "float" and not math.isfinite(value):      # nan would turn a rate limit off
        problems.append(f"{key}: expected a finite number, got {value!r}")
        return None
    return float(value) if kind == "float" else value


MAX_HASH_MEMLIMIT_KIB = 4 * 1024 * 1024      # 4 GiB a hash: more is a typo, and more than libsodium takes


def _is_host(host: str) -> bool:
    """An address to listen on: "" (every interface), an IP address (IPv6 with a %scope too) or a
    host name (a trailing dot too)."""
    if host == "":
        return True
    for family, address in ((socket.AF_INET, host), (socket.AF_INET6, host.partition("%")[0])):
        try:
            socket.inet_pton(family, address)
            return True
        except OSError:
            pass
    return bool(re.fullmatch(r"(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
                             r"(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?", host))


def validate(config: Config) -> list[str]:
    """Every problem with `config`, as 'key: problem' strings."""
    problems = []
    if not is_valid_server_name(config.server_name):
        problems.append(f"server_name: {config.server_name!r} is not a valid server name")
    if not 1 <= config.port <= 65535:
        problems.append(f"port: {config.port} is not between 1 and 65535")
    if not config.data_dir:
        problems.append("data_dir: must not be empty")
    if config.public_baseurl and not re.match(r"^https?://[^/\s]+(/.*)?$", config.public_baseurl):
        problems.append(f"public_baseurl: {config.public_baseurl!r} is not an http(s) URL")
    if config.max_request_bytes < 65_536:
        problems.append("max_request_bytes: must be at least 65536 (one event)")
    for key in ("rc_login_per_second", "rc_registration_per_second", "rc_failed_auth_per_second",
                "rc_message_per_second", "rc_room_creation_per_second", "rc_invites_per_second",
                "rc_invites_received_per_second", "rc_joins_per_second", "rc_receipts_per_second",
                "rc_typing_per_second"):
        if getattr(config, key) <= 0:
            problems.append(f"{key}: must be greater than 0")
    for key in ("rc_login_burst", "rc_registration_burst", "rc_failed_auth_burst", "rc_message_burst",
                "rc_room_creation_burst", "rc_invites_burst", "rc_invites_received_burst", "rc_joins_burst",
                "rc_receipts_burst", "rc_typing_burst", "writer_max_batch_jobs", "password_hash_opslimit"):
        if getattr(config, key) < 1:
            problems.append(f"{key}: must be at least 1")
    if config.refreshable_access_token_lifetime_ms < 1000:
        problems.append("refreshable_access_token_lifetime_ms: must be at least 1000")
    if not 8 <= config.password_hash_memlimit_kib <= MAX_HASH_MEMLIMIT_KIB:
        problems.append(f"password_hash_memlimit_kib: must be between 8 and {MAX_HASH_MEMLIMIT_KIB}")
    if not _is_host(config.host):
        problems.append(f"host: {config.host!r} is not an IP address or host name")
    if config.default_room_version not in KNOWN_ROOM_VERSIONS:
        problems.append(f"default_room_version: {config.default_room_version!r} is not one of "
                        f"{', '.join(KNOWN_ROOM_VERSIONS)}")
    if config.max_upload_size < 1:
        problems.append("max_upload_size: must be at least 1")
    if config.rc_media_upload_per_second <= 0 or config.rc_media_upload_burst < 1:
        problems.append("rc_media_upload_per_second/burst: must be greater than 0 / at least 1")
    for key in ("media_quota_per_user_bytes", "media_retention_local_days", "media_retention_remote_days",
                "max_rooms_per_user", "max_devices_per_user"):
        if getattr(config, key) < 0:
            problems.append(f"{key}: must not be negative (0 turns it off)")
    turn_uris = config.turn_uri_list
    if any(not re.match(r"^turns?:\S+$", u) for u in turn_uris):
        problems.append("turn_uris: each URI must start with turn: or turns:")
    if turn_uris and not config.turn_shared_secret and not (config.turn_username and config.turn_password):
        problems.append("turn_uris: set turn_shared_secret, or turn_username and turn_password, as well")
    if config.turn_user_lifetime_ms < 1000:
        problems.append("turn_user_lifetime_ms: must be at least 1000")
    if config.log_level.lower() not in ("debug", "info", "warning", "error"):
        problems.append(f"log_level: {config.log_level!r} is not debug, info, warning or error")
    return problems


def _apply(values: dict[str, Any], source: Mapping[str, Any], origin: str, problems: list[str]) -> None:
    for key, value in source.items():
        if key not in KEYS:
            problems.append(f"{key}: unknown key ({origin})")
            continue
        coerced = _coerce(key, value, problems)
        if coerced is not None:
            values[key] = coerced


def load(config_file: str | os.PathLike[str] | None = None,
         environ: Mapping[str, str] | None = None,
         flags: Mapping[str, Any] | None = None) -> Config:
    """Build the config from defaults, the TOML file, the environment and flags, then validate.

    With no file given, `<data_dir>/pocketserver.toml` is read when it exists.
    """
    environ = os.environ if environ is None else environ
    flags = {k: v for k, v in (flags or {}).items() if v is not None}
    problems: list[str] = []
    env_values = {key.lower()[len(ENV_PREFIX):]: value for key, value in environ.items()
                  if key.startswith(ENV_PREFIX) and key.lower()[len(ENV_PREFIX):] in KEYS}
    file_values: dict[str, Any] = {}
    path = Path(config_file) if config_file else None
    if path is None:
        data_dir = flags.get("data_dir") or env_values.get("data_dir") or KEYS["data_dir"].default
        candidate = Path(data_dir) / CONFIG_FILE_NAME
        path = candidate if candidate.exists() else None
    if path is not None:
        try:
            file_values = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"config file {path} does not exist") from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"config file {path}: {exc}") from None
    values: dict[str, Any] = {}
    _apply(values, file_values, f"in {path}", problems)
    _apply(values, env_values, "environment", problems)
    _apply(values, flags, "command line", problems)
    if not values.get("server_name"):
        values["server_name"] = default_server_name()
    config = Config(**values)
    problems += validate(config)
    if problems:
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(problems))
    return config


def render_toml(config: Config, *, skip: tuple[str, ...] = ()) -> str:
    """The config as a commented TOML file, every key (but `skip`) with its value."""
    lines = ["# pocketserver configuration. Environment variables POCKETSERVER_<KEY> and",
             "# command-line flags override these values.", ""]
    for f in fields(Config):
        if f.name in skip:
            continue
        value = getattr(config, f.name)
        lines.append(f"# {f.metadata['doc']}")
        if isinstance(value, bool):
            rendered = "true" if value else "false"
        elif isinstance(value, (int, float)):
            rendered = repr(value)
        else:
            rendered = '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'
        lines.append(f"{f.name} = {rendered}")
    return "\n".join(lines) + "\n"
