"""Redactions: auth rule 11 of room versions 1-2, and whether a redaction is applied (v3+).

Spec: rooms/v1, "Authorisation rules" rule 11; rooms/v3, "Handling redactions".
"""
from __future__ import annotations

from pocketserver.rooms.auth_rules.context import AuthRuleViolation, AuthState, rule_number, server_name_of_user
from pocketserver.rooms.events import Pdu, get_redacts
from pocketserver.rooms.identifiers import server_name_of


def check_redaction(event: Pdu, state: AuthState) -> None:
    """Raise AuthRuleViolation unless a v1-2 redaction's sender holds the redact level or shares the event's domain.

    Spec: rooms/v1, "Authorisation rules", rule 11.
    """
    version = state.version
    if state.user_power_level(event.sender) >= state.power_levels.redact:
        return
    redacts = get_redacts(event, version)
    if redacts is not None and server_name_of(redacts) == server_name_of(event.event_id):
        return
    raise AuthRuleViolation(rule_number(version, "redaction", 3), "sender may not redact this event")


def check_redaction_applies(redaction: Pdu, original: Pdu, state: AuthState) -> bool:
    """Whether an authorised redaction should be applied to the original event it redacts.

    In v1-2 the auth rules already decided. From v3 the sender needs the redact level or the
    original sender's domain.

    Spec: rooms/v3, "Handling redactions".
    """
    version = state.version
    if get_redacts(redaction, version) != original.event_id or redaction.room_id != original.room_id:
        return False
    if version.redaction_checked_by_auth_rules:
        return True
    if state.user_power_level(redaction.sender) >= state.power_levels.redact:
        return True
    return server_name_of_user(redaction.sender) == server_name_of_user(original.sender)
