"""The parity tool's own logic: how bodies are reduced to key paths and which differences count.

The tool itself needs a running Synapse (docs/synapse-parity.md); these parts need nothing.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

_spec = importlib.util.spec_from_file_location(
    "synapse_parity", Path(__file__).resolve().parents[2] / "tools" / "synapse_parity.py")
assert _spec is not None and _spec.loader is not None
parity = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(parity)
C = parity.C


def test_shape_folds_ids_and_leaves_out_unstable_fields() -> None:
    body = {"rooms": {"join": {"!a:x": {"timeline": {"events": [{"type": "m.room.message", "content": {"body": "hi"}},
                                                                 {"type": "m.room.name"}]}}}},
            "org.matrix.msc1234.thing": 1, "next_batch": "s1"}
    assert parity.shape(body) == {
        "rooms", "rooms.join", "rooms.join.<id>", "rooms.join.<id>.timeline", "rooms.join.<id>.timeline.events",
        "rooms.join.<id>.timeline.events[].type", "rooms.join.<id>.timeline.events[].content",
        "rooms.join.<id>.timeline.events[].content.body", "next_batch"}


def test_explanations_match_by_user_path_and_group() -> None:
    unban = parity.Case("carol", "POST", C + "/rooms/{priv}/unban", {"user_id": "{erin}"})
    assert parity.explanation(unban) is not None                     # "*" user, any room
    outside = parity.Case("alice", "POST", C + "/rooms/{unknownroom}/kick", {"user_id": "{erin}"}, "#outside")
    assert "not on this server" in parity.explanation(outside)
    banned = parity.Case("bob", "GET", C + "/rooms/{banr}/messages?dir=b&limit=2")
    assert "banned" in parity.explanation(banned)
    strict = parity.Case("alice", "POST", C + "/createRoom", {"is_direct": "yes"}, strict=True)
    assert parity.explanation(strict) is not None
    # A plain read by a member has no excuse: a difference there is reported.
    assert parity.explanation(parity.Case("alice", "GET", C + "/rooms/{pub}/messages?dir=b&limit=2")) is None
    assert parity.explanation(parity.Case("alice", "POST", C + "/createRoom", {"is_direct": True})) is None


def test_only_loopback_servers_are_compared() -> None:
    parity.check_loopback("http://127.0.0.1:18008")
    parity.check_loopback("http://localhost:18028")
    for url in ("http://192.168.1.5:8008", "https://matrix.org"):
        try:
            parity.check_loopback(url)
        except SystemExit:
            continue
        raise AssertionError(f"{url} was accepted")


def test_every_case_fills_on_a_set_up_server() -> None:
    server = parity.Server("x", "http://127.0.0.1:1", "secret")
    server.ids = {name: f"@{name}:localhost" for name in parity.USERS}
    server.ids.update({k: f"!{k}:localhost" for k in ("pub", "priv", "banr", "unknownroom", "remoteroom",
                                                       "badroom")})
    server.ids.update(msg="$m", privmsg="$p", root="$r", rel="!rel:localhost", unknownevent="$u", nobody="@nobody:localhost",
                      remoteuser="@r:elsewhere.example", baduser="notauser", media="abc", sy="!sy:localhost")
    later = [*parity.sync_cases(), *parity.flow_cases()]
    saved = {case.save for case in later if case.save}
    assert {"since", "pos", "bobmsg", "dm", "since3", "troot", "space", "kr", "bobsince2"} <= saved
    server.ids.update({name: f"saved-{name}" for name in saved})
    cases = [*parity.room_cases(), *parity.other_cases(), *later]
    assert len(cases) > 600
    for n, case in enumerate(cases):
        path = server.fill(case.template, n)
        assert "{" not in path.split("?")[0], path


def test_the_keys_file_is_what_the_generator_writes_and_its_signatures_hold() -> None:
    """tools/parity_keys.json is signed once (the tool has no crypto); the server must accept it."""
    from pocketserver.e2ee import verify_signed_json
    _gen = importlib.util.spec_from_file_location("parity_keys", Path(parity.__file__).with_name("parity_keys.py"))
    assert _gen is not None and _gen.loader is not None
    generator = importlib.util.module_from_spec(_gen)
    _gen.loader.exec_module(generator)
    assert generator.OUT.read_text(encoding="utf-8") == generator.render()
    keys, user, device = parity.KEYS, parity.KEYS["user_id"], parity.KEYS["device_id"]
    device_key = keys["device_keys"]["keys"][f"ed25519:{device}"]
    verify_signed_json(keys["device_keys"], user, f"ed25519:{device}", device_key)
    for key in [*keys["one_time_keys"].values(), *keys["fallback_keys"].values()]:
        verify_signed_json(key, user, f"ed25519:{device}", device_key)
    [(master_id, master)] = keys["master_key"]["keys"].items()
    for name in ("self_signing_key", "user_signing_key"):
        verify_signed_json(keys[name], user, master_id, master)
    [(ssk_id, ssk)] = keys["self_signing_key"]["keys"].items()
    verify_signed_json(keys["device_signed_by_self_signing_key"], user, ssk_id, ssk)
    bob = keys["bob_master_key"]["user_id"]
    [(bob_master_id, bob_master)] = keys["bob_master_key"]["keys"].items()
    verify_signed_json(keys["bob_user_signing_key"], bob, bob_master_id, bob_master)
    [(bob_usk_id, bob_usk)] = keys["bob_user_signing_key"]["keys"].items()
    verify_signed_json(keys["alice_master_signed_by_bob"], bob, bob_usk_id, bob_usk)
