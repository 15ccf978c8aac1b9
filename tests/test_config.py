"""Configuration precedence and validation."""
from __future__ import annotations

from pathlib import Path

import pytest

from pocketserver.config import ConfigError, load, render_toml


def test_precedence_flags_env_file_defaults(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('server_name = "file.example"\nport = 9001\nhost = "127.0.0.1"\nenable_registration = true\n')
    config = load(path, environ={"POCKETSERVER_PORT": "9002", "POCKETSERVER_HOST": "127.0.0.2"},
                  flags={"host": "127.0.0.3"})
    assert config.server_name == "file.example"       # file beats default
    assert config.port == 9002                          # env beats file
    assert config.host == "127.0.0.3"                   # flag beats env
    assert config.enable_registration is True
    assert config.registration_requires_token is True   # default
    assert config.max_request_bytes == 1_048_576


def test_every_problem_is_reported_with_its_key(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('port = "eighty"\nserver_name = "bad name"\nno_such_key = 1\nrc_login_burst = 0\n')
    with pytest.raises(ConfigError) as err:
        load(path, environ={"POCKETSERVER_ENABLE_REGISTRATION": "perhaps"})
    text = str(err.value)
    for fragment in ("port:", "server_name:", "no_such_key: unknown key", "rc_login_burst:",
                     "enable_registration:"):
        assert fragment in text


def test_broken_toml_and_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("port = = 3")
    with pytest.raises(ConfigError, match="c.toml"):
        load(path, environ={})
    with pytest.raises(ConfigError, match="does not exist"):
        load(tmp_path / "missing.toml", environ={})


def test_data_dir_config_is_found_and_rendered_config_round_trips(tmp_path: Path) -> None:
    config = load(environ={}, flags={"data_dir": str(tmp_path), "server_name": "round.trip", "port": 8100})
    (tmp_path / "pocketserver.toml").write_text(render_toml(config, skip=("data_dir",)))
    again = load(environ={}, flags={"data_dir": str(tmp_path)})
    assert again == config


def test_values_that_would_turn_checks_off_or_fail_later_are_refused(tmp_path: Path) -> None:
    """nan as a rate (every comparison false: the limit off), a hash memory limit libsodium
    refuses at the first password, a host that is not one: refused at load, each named."""
    path = tmp_path / "c.toml"
    path.write_text('rc_login_per_second = nan\npassword_hash_memlimit_kib = 99999999999\nhost = "not a host"\n')
    with pytest.raises(ConfigError) as err:
        load(path, environ={"POCKETSERVER_RC_MESSAGE_PER_SECOND": "inf"})
    text = str(err.value)
    for key in ("rc_login_per_second", "rc_message_per_second", "password_hash_memlimit_kib", "host"):
        assert f"{key}:" in text, text
    for host in ("::", "", "fe80::1%eth0", "pi.local."):       # every interface, a scoped address, a FQDN
        path.write_text(f'host = "{host}"\n')
        assert load(path, environ={}).host == host
