"""The authorisation rules for m.room.member events.

Spec: rooms/v12, "Authorisation rules" (rule 5; rule 4 in v6-11, rule 5 in v1-5; sub-steps per
fragments v1-auth-rules, v3-auth-rules and v8-auth-rules).
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import nacl.exceptions
import nacl.signing

from pocketserver.rooms.auth_rules.context import AuthRuleViolation, AuthState, rule_number, server_name_of_user
from pocketserver.rooms.content import Membership
from pocketserver.rooms.events import Pdu
from pocketserver.rooms.hashing import decode_base64
from pocketserver.rooms.signing import SignatureError, verify_json_signature
from pocketserver.rooms.versions import RoomVersion


def _member_sections(version: RoomVersion) -> dict[str, int]:
    """The sub-rule number of each membership kind, which shifts as versions add steps.

    Spec: rooms/v6, v7 and v8, "Authorisation rules".
    """
    if version.restricted_join_rule:
        return {"via": 2, "join": 3, "invite": 4, "leave": 5, "ban": 6, "knock": 7, "unknown": 8}
    if version.knock_join_rule:
        return {"join": 2, "invite": 3, "leave": 4, "ban": 5, "knock": 6, "unknown": 7}
    return {"join": 2, "invite": 3, "leave": 4, "ban": 5, "unknown": 6}


def check_member(event: Pdu, state: AuthState) -> None:
    """Raise AuthRuleViolation unless the m.room.member event is allowed; return if it is.

    Spec: rooms/v12, "Authorisation rules", rule 5.
    """
    version = state.version
    sections = _member_sections(version)

    def rule(kind: str, *sub: int) -> str:
        """The number of a sub-step of a membership kind. Spec: as above."""
        return rule_number(version, "member", sections[kind], *sub)

    membership = Membership.from_content(event.content)
    if event.state_key is None or membership.membership is None:
        raise AuthRuleViolation(rule_number(version, "member", 1), "no state_key or no membership")
    if version.restricted_join_rule and membership.join_authorised_via_users_server is not None:
        authoriser_server = server_name_of_user(membership.join_authorised_via_users_server)
        signatures = event.raw.get("signatures")
        if not isinstance(signatures, Mapping) or authoriser_server not in signatures:
            # The signature itself is verified with the other signatures, see
            # signing.required_signature_servers.
            raise AuthRuleViolation(rule("via", 1), "not signed by the join_authorised_via_users_server server")
    checks = {"join": _check_join, "invite": _check_invite, "leave": _check_leave, "ban": _check_ban}
    if version.knock_join_rule:
        checks["knock"] = _check_knock
    check = checks.get(membership.membership)
    if check is None:
        raise AuthRuleViolation(rule("unknown"), f"unknown membership {membership.membership!r}")
    check(event, membership, state, lambda *sub: rule(membership.membership or "", *sub))


def _check_join(event: Pdu, membership: Membership, state: AuthState, rule: Callable[..., str]) -> None:
    """Membership `join`: the creator's first join, then ban, invite/knock, restricted and public rules.

    Spec: rooms/v12, "Authorisation rules", rule 5.3.
    """
    version = state.version
    create_id = state.create_event.event_id
    if event.prev_events == (create_id,) and event.state_key == state.create.creator:
        return
    if event.sender != event.state_key:
        raise AuthRuleViolation(rule(2), "sender does not match state_key")
    current = state.membership(event.sender)
    if current == "ban":
        raise AuthRuleViolation(rule(3), "sender is banned")
    join_rule = state.join_rule
    if join_rule == "invite" or (version.knock_join_rule and join_rule == "knock"):
        if current in ("invite", "join"):
            return
        raise AuthRuleViolation(rule(len(_join_steps(version))), "not invited")
    if _is_restricted(join_rule, version):
        if current in ("invite", "join"):
            return
        via = membership.join_authorised_via_users_server
        if via is None or state.membership(via) != "join":
            raise AuthRuleViolation(rule(5, 2), "join_authorised_via_users_server is not a joined member")
        if state.user_power_level(via) < state.power_levels.invite:
            raise AuthRuleViolation(rule(5, 2), "join_authorised_via_users_server may not invite")
        return
    if join_rule == "public":
        return
    raise AuthRuleViolation(rule(len(_join_steps(version))), f"join rule {join_rule!r} does not allow joining")


def _join_steps(version: RoomVersion) -> tuple[str, ...]:
    """The names of the join sub-steps, whose last is the final reject.

    Spec: rooms/v1 and rooms/v8, "Authorisation rules" (join sub-steps).
    """
    steps = ("creator", "sender", "banned", "invite")
    if version.restricted_join_rule:
        steps += ("restricted",)
    return steps + ("public", "reject")


def _is_restricted(join_rule: str, version: RoomVersion) -> bool:
    """Whether the join rule works as `restricted` here (`knock_restricted` too from v10).

    Spec: rooms/v8 and rooms/v10, "Authorisation rules", rule 4.3.5.
    """
    if join_rule == "restricted":
        return version.restricted_join_rule
    return join_rule == "knock_restricted" and version.knock_restricted_join_rule


def _check_invite(event: Pdu, membership: Membership, state: AuthState, rule: Callable[..., str]) -> None:
    """Membership `invite`: the third-party path, or a joined sender with the invite level.

    Spec: rooms/v12, "Authorisation rules", rule 5.4.
    """
    target = event.state_key or ""
    if membership.third_party_invite is not None:
        return _check_third_party_invite(event, membership.third_party_invite, state, rule)
    if state.membership(event.sender) != "join":
        raise AuthRuleViolation(rule(2), "sender is not joined")
    if state.membership(target) in ("join", "ban"):
        raise AuthRuleViolation(rule(3), "target is joined or banned")
    if state.user_power_level(event.sender) >= state.power_levels.invite:
        return
    raise AuthRuleViolation(rule(5), "sender's power level is below the invite level")


def _check_third_party_invite(event: Pdu, invite: Mapping[str, Any], state: AuthState, rule: Callable[..., str]) -> None:
    """An invite carrying `third_party_invite`: it must match a token and be signed by one of its keys.

    Spec: rooms/v12, "Authorisation rules", rule 5.4.1.
    """
    if state.membership(event.state_key or "") == "ban":
        raise AuthRuleViolation(rule(1, 1), "target is banned")
    signed = invite.get("signed")
    if not isinstance(signed, Mapping):
        raise AuthRuleViolation(rule(1, 2), "third_party_invite has no signed object")
    mxid, token = signed.get("mxid"), signed.get("token")
    if not isinstance(mxid, str) or not isinstance(token, str):
        raise AuthRuleViolation(rule(1, 3), "signed has no mxid or token")
    if mxid != event.state_key:
        raise AuthRuleViolation(rule(1, 4), "mxid does not match state_key")
    tpi_event = state.events.get(("m.room.third_party_invite", token))
    if tpi_event is None:
        raise AuthRuleViolation(rule(1, 5), "no m.room.third_party_invite for the token")
    if tpi_event.sender != event.sender:
        raise AuthRuleViolation(rule(1, 6), "sender did not send the m.room.third_party_invite")
    if _signed_by_any(signed, _public_keys(tpi_event.content)):
        return
    raise AuthRuleViolation(rule(1, 8), "no signature in signed matches the invite's public keys")


def _public_keys(content: Mapping[str, Any]) -> list[str]:
    """The base64 public keys of an m.room.third_party_invite: `public_key` and each of `public_keys`.

    Spec: rooms/v12, "Authorisation rules", rule 5.4.1.7.
    """
    keys = [content["public_key"]] if isinstance(content.get("public_key"), str) else []
    for entry in content.get("public_keys") or []:
        if isinstance(entry, Mapping) and isinstance(entry.get("public_key"), str):
            keys.append(entry["public_key"])
    return keys


def _signed_by_any(signed: Mapping[str, Any], public_keys: list[str]) -> bool:
    """Whether any signature in `signed` verifies with any of the public keys.

    Spec: rooms/v12, "Authorisation rules", rule 5.4.1.7; appendices, "Checking for a Signature".
    """
    signatures = signed.get("signatures")
    if not isinstance(signatures, Mapping):
        return False
    for public_key in public_keys:
        try:
            verify_key = nacl.signing.VerifyKey(decode_base64(public_key))
        except (ValueError, nacl.exceptions.CryptoError):
            continue
        for server_name, by_key in signatures.items():
            for key_id in by_key if isinstance(by_key, Mapping) else ():
                try:
                    verify_json_signature(signed, server_name, key_id, verify_key)
                    return True
                except SignatureError:
                    continue
    return False


def _check_leave(event: Pdu, membership: Membership, state: AuthState, rule: Callable[..., str]) -> None:
    """Membership `leave`: leaving, rejecting an invite or knock, unbanning and kicking.

    Spec: rooms/v12, "Authorisation rules", rule 5.5.
    """
    version = state.version
    target = event.state_key or ""
    if event.sender == target:
        allowed = ("invite", "join", "knock") if version.knock_join_rule else ("invite", "join")
        if state.membership(target) in allowed:
            return
        raise AuthRuleViolation(rule(1), "cannot leave without being invited, joined or knocking")
    if state.membership(event.sender) != "join":
        raise AuthRuleViolation(rule(2), "sender is not joined")
    sender_level = state.user_power_level(event.sender)
    if state.membership(target) == "ban" and sender_level < state.power_levels.ban:
        raise AuthRuleViolation(rule(3), "sender's power level is below the ban level")
    if sender_level >= state.power_levels.kick and state.user_power_level(target) < sender_level:
        return
    raise AuthRuleViolation(rule(5), "sender may not kick the target")


def _check_ban(event: Pdu, membership: Membership, state: AuthState, rule: Callable[..., str]) -> None:
    """Membership `ban`: a joined sender with the ban level and more power than the target.

    Spec: rooms/v12, "Authorisation rules", rule 5.6.
    """
    if state.membership(event.sender) != "join":
        raise AuthRuleViolation(rule(1), "sender is not joined")
    sender_level = state.user_power_level(event.sender)
    if sender_level >= state.power_levels.ban and state.user_power_level(event.state_key or "") < sender_level:
        return
    raise AuthRuleViolation(rule(3), "sender may not ban the target")


def _check_knock(event: Pdu, membership: Membership, state: AuthState, rule: Callable[..., str]) -> None:
    """Membership `knock` (v7+): only under a knock join rule, only for oneself, not when already in.

    Spec: rooms/v12, "Authorisation rules", rule 5.7.
    """
    version = state.version
    join_rule = state.join_rule
    if not (join_rule == "knock" or (join_rule == "knock_restricted" and version.knock_restricted_join_rule)):
        raise AuthRuleViolation(rule(1), f"join rule {join_rule!r} does not allow knocking")
    if event.sender != event.state_key:
        raise AuthRuleViolation(rule(2), "sender does not match state_key")
    if state.membership(event.sender) not in ("ban", "invite", "join"):
        return
    raise AuthRuleViolation(rule(4), "sender is banned, invited or joined")
