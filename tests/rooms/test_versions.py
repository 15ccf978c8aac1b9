"""Room version flags, checked against each rooms/vN page."""
from __future__ import annotations

import pytest

from pocketserver.rooms.versions import (
    DEFAULT_ROOM_VERSION, KNOWN_ROOM_VERSIONS, EventIdFormat, StateResAlgorithm, UnknownRoomVersion,
    get_room_version,
)


def _versions_with(flag: str) -> set[int]:
    return {int(v) for v, record in KNOWN_ROOM_VERSIONS.items() if getattr(record, flag)}


def test_known_versions_and_default() -> None:
    """rooms, "Complete list of room versions": 1-12 are stable; servers SHOULD default to 12."""
    assert sorted(KNOWN_ROOM_VERSIONS, key=int) == [str(n) for n in range(1, 13)]
    assert DEFAULT_ROOM_VERSION == "12"
    assert all(KNOWN_ROOM_VERSIONS[k].identifier == k for k in KNOWN_ROOM_VERSIONS)


def test_unknown_version_raises() -> None:
    """rooms, "Room version grammar": anything else is not understood here."""
    assert get_room_version("9").identifier == "9"
    with pytest.raises(UnknownRoomVersion):
        get_room_version("13")


def test_event_id_formats() -> None:
    """rooms/v1, v3, v4 "Event IDs": server-assigned, then base64, then URL-safe base64."""
    formats = {int(k): v.event_id_format for k, v in KNOWN_ROOM_VERSIONS.items()}
    assert {n for n, f in formats.items() if f is EventIdFormat.SERVER_ASSIGNED} == {1, 2}
    assert {n for n, f in formats.items() if f is EventIdFormat.BASE64} == {3}
    assert {n for n, f in formats.items() if f is EventIdFormat.URL_SAFE_BASE64} == set(range(4, 13))


def test_state_res_algorithms() -> None:
    """rooms/v1 uses v1 state res, v2 introduces v2, v12 revises it."""
    algos = {int(k): v.state_res for k, v in KNOWN_ROOM_VERSIONS.items()}
    assert algos[1] is StateResAlgorithm.V1
    assert all(algos[n] is StateResAlgorithm.V2 for n in range(2, 12))
    assert algos[12] is StateResAlgorithm.V2_1


@pytest.mark.parametrize(
    ("flag", "versions"),
    [
        ("enforce_key_validity", set(range(5, 13))),              # rooms/v5
        ("special_case_aliases_auth", set(range(1, 6))),          # rooms/v6 removes rule 4
        ("redaction_checked_by_auth_rules", {1, 2}),              # rooms/v3 "Handling redactions"
        ("strict_canonical_json", set(range(6, 13))),             # rooms/v6 "Canonical JSON"
        ("float_power_levels", set(range(1, 6))),                 # fragment v1-floaty-power-levels
        ("string_power_levels", set(range(1, 10))),               # rooms/v10 drops stringy levels
        ("limit_notifications_power_levels", set(range(6, 13))),  # rooms/v6 rule 9.4/9.5
        ("knock_join_rule", set(range(7, 13))),                   # rooms/v7
        ("restricted_join_rule", set(range(8, 13))),              # rooms/v8
        ("knock_restricted_join_rule", set(range(10, 13))),       # rooms/v10
        ("redact_keeps_aliases", set(range(1, 6))),               # rooms/v6 "Redactions"
        ("redact_keeps_join_rules_allow", set(range(8, 13))),     # rooms/v8 "Redactions"
        ("redact_keeps_join_authorised_via_users_server", set(range(9, 13))),   # rooms/v9
        ("updated_redaction_rules", {11, 12}),                    # rooms/v11
        ("creator_in_content", set(range(1, 11))),                # rooms/v11 removes creator
        ("redacts_in_content", {11, 12}),                         # rooms/v11
        ("room_id_is_create_event_id", {12}),                     # rooms/v12
        ("create_in_auth_events", set(range(1, 12))),             # rooms/v12 rule 3.2 note
        ("additional_creators", {12}),                            # rooms, "Feature matrix"
        ("privileged_creators", {12}),                            # rooms/v12 "room creators"
    ],
)
def test_flag_versions(flag: str, versions: set[int]) -> None:
    """Each flag is on exactly for the versions whose page introduces (or keeps) the behaviour."""
    assert _versions_with(flag) == versions


def test_max_depth() -> None:
    """pdu_v1 allows depth up to 2**63-1; depth_v6 lowers the limit to 2**53-1."""
    assert KNOWN_ROOM_VERSIONS["5"].max_depth == 2**63 - 1
    assert KNOWN_ROOM_VERSIONS["6"].max_depth == 2**53 - 1


def test_records_are_frozen() -> None:
    """The records are shared; nobody may change them."""
    with pytest.raises(AttributeError):
        KNOWN_ROOM_VERSIONS["1"].knock_join_rule = True  # type: ignore[misc]
    with pytest.raises(TypeError):
        KNOWN_ROOM_VERSIONS["13"] = KNOWN_ROOM_VERSIONS["12"]  # type: ignore[index]
