"""One frozen record of behaviour flags per supported room version.

Spec: rooms, "Complete list of room versions", and each rooms/vN page.
"""
from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType


class EventIdFormat(enum.Enum):
    """How an event gets its ID (rooms/v1 "Event IDs", rooms/v3 and rooms/v4 "Event IDs")."""

    SERVER_ASSIGNED = "server_assigned"   # v1-2: $opaque_id:domain, chosen by the origin server
    BASE64 = "base64"                     # v3: $ + unpadded base64 of the reference hash
    URL_SAFE_BASE64 = "url_safe_base64"   # v4+: $ + URL-safe unpadded base64 of the reference hash


class StateResAlgorithm(enum.Enum):
    """Which state resolution algorithm the version uses."""

    V1 = "v1"        # rooms/v1 "State resolution"
    V2 = "v2"        # rooms/v2 "State resolution"
    V2_1 = "v2.1"    # rooms/v12 "State resolution": v2 from an empty state, plus the conflicted state subgraph


@dataclass(frozen=True, slots=True)
class RoomVersion:
    """Behaviour flags of one room version; code asks about a capability, not a version string."""

    identifier: str
    event_id_format: EventIdFormat
    state_res: StateResAlgorithm
    enforce_key_validity: bool               # v5+: keys' valid_until_ts must cover origin_server_ts
    special_case_aliases_auth: bool          # v1-5: auth rule 4 for m.room.aliases
    redaction_checked_by_auth_rules: bool    # v1-2: auth rule 11 for m.room.redaction
    strict_canonical_json: bool              # v6+: integers in the safe range, no floats, depth < 2**53
    float_power_levels: bool                 # v1-5: floats in m.room.power_levels are truncated
    string_power_levels: bool                # v1-9: integer strings in m.room.power_levels are accepted
    limit_notifications_power_levels: bool   # v6+: power level rules also cover `notifications`
    knock_join_rule: bool                    # v7+
    restricted_join_rule: bool               # v8+
    knock_restricted_join_rule: bool         # v10+
    redact_keeps_aliases: bool               # v1-5: m.room.aliases keeps `aliases` under redaction
    redact_keeps_join_rules_allow: bool      # v8+
    redact_keeps_join_authorised_via_users_server: bool   # v9+
    updated_redaction_rules: bool            # v11+: the rooms/v11 redaction algorithm
    creator_in_content: bool                 # v1-10: m.room.create content carries `creator`
    redacts_in_content: bool                 # v11+: m.room.redaction has content.redacts
    room_id_is_create_event_id: bool         # v12+: room ID is `!` + create event ID hash; create has no room_id
    create_in_auth_events: bool              # v1-11: m.room.create is selected into auth_events
    additional_creators: bool                # v12+: content.additional_creators of m.room.create
    privileged_creators: bool                # v12+: creators have infinite power level

    @property
    def max_depth(self) -> int:
        """The largest allowed `depth`.

        Spec: rooms/v1 and rooms/v6, "Event format" (pdu_v1 and depth_v6 definitions).
        """
        return 2**53 - 1 if self.strict_canonical_json else 2**63 - 1


def _version(identifier: str) -> RoomVersion:
    """Build the flags of numbered version `identifier` from the per-version changes.

    Spec: rooms/v1 to rooms/v12, the "changed-in" and "added-in" notes of each page.
    """
    n = int(identifier)
    if n <= 2:
        event_id_format = EventIdFormat.SERVER_ASSIGNED
    elif n == 3:
        event_id_format = EventIdFormat.BASE64
    else:
        event_id_format = EventIdFormat.URL_SAFE_BASE64
    if n == 1:
        state_res = StateResAlgorithm.V1
    elif n < 12:
        state_res = StateResAlgorithm.V2
    else:
        state_res = StateResAlgorithm.V2_1
    return RoomVersion(
        identifier=identifier,
        event_id_format=event_id_format,
        state_res=state_res,
        enforce_key_validity=n >= 5,
        special_case_aliases_auth=n <= 5,
        redaction_checked_by_auth_rules=n <= 2,
        strict_canonical_json=n >= 6,
        float_power_levels=n <= 5,
        string_power_levels=n <= 9,
        limit_notifications_power_levels=n >= 6,
        knock_join_rule=n >= 7,
        restricted_join_rule=n >= 8,
        knock_restricted_join_rule=n >= 10,
        redact_keeps_aliases=n <= 5,
        redact_keeps_join_rules_allow=n >= 8,
        redact_keeps_join_authorised_via_users_server=n >= 9,
        updated_redaction_rules=n >= 11,
        creator_in_content=n <= 10,
        redacts_in_content=n >= 11,
        room_id_is_create_event_id=n >= 12,
        create_in_auth_events=n <= 11,
        additional_creators=n >= 12,
        privileged_creators=n >= 12,
    )


KNOWN_ROOM_VERSIONS: Mapping[str, RoomVersion] = MappingProxyType(
    {str(n): _version(str(n)) for n in range(1, 13)}
)
DEFAULT_ROOM_VERSION = "12"


class UnknownRoomVersion(ValueError):
    """The room version identifier is not one this server implements."""


def get_room_version(identifier: str) -> RoomVersion:
    """Return the record for a room version identifier or raise UnknownRoomVersion.

    Spec: rooms, "Complete list of room versions".
    """
    try:
        return KNOWN_ROOM_VERSIONS[identifier]
    except KeyError:
        raise UnknownRoomVersion(f"unsupported room version {identifier!r}") from None
