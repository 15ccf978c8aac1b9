"""Content repository: uploads, downloads, thumbnails, URL previews and retention.

Spec: client-server-api, "Content repository".
"""
from __future__ import annotations

import re
import secrets
import string
from typing import Any, Callable

from pocketserver.errors import InvalidParam, MatrixError, NotFound
from pocketserver.ids import is_valid_server_name

# Spec: "Security considerations": only A-Za-z0-9, _ and - in a media ID. Ours are 24
# alphanumerics; a longer bound still keeps any ID far from filesystem limits.
MEDIA_ID_RE = re.compile(r"[A-Za-z0-9_-]{1,255}")
MEDIA_ID_LENGTH = 24


class CannotOverwriteMedia(MatrixError):
    errcode, status = "M_CANNOT_OVERWRITE_MEDIA", 409


class NotYetUploaded(MatrixError):
    errcode, status = "M_NOT_YET_UPLOADED", 504


def new_media_id() -> str:
    """A fresh server-generated media ID."""
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(MEDIA_ID_LENGTH))


def check_media_address(server_name: str, media_id: str) -> None:
    """Refuse a server name or media ID that breaks the grammar, before anything is looked up.

    Spec: client-server-api, "Content repository" > "Security considerations".
    """
    if not is_valid_server_name(server_name):
        raise InvalidParam("Invalid server name")
    if not MEDIA_ID_RE.fullmatch(media_id):
        raise NotFound("Unknown media")


def mxc_uri(server_name: str, media_id: str) -> str:
    return f"mxc://{server_name}/{media_id}"


def add_media_parser(sub: Any, add_config_flags: Callable[[Any], None]) -> None:
    """The `pocketserver media purge --older-than DAYS [--local|--remote]` command line."""
    media = sub.add_parser("media", help="manage the media store")
    actions = media.add_subparsers(dest="media_command", metavar="ACTION", required=True)
    purge = actions.add_parser("purge", help="delete media nobody downloaded for DAYS days")
    purge.add_argument("--older-than", type=int, required=True, metavar="DAYS",
                       help="delete media last downloaded (or uploaded) more than DAYS days ago")
    which = purge.add_mutually_exclusive_group()
    which.add_argument("--local", action="store_true", help="only media uploaded here")
    which.add_argument("--remote", action="store_true", help="only cached remote media")
    add_config_flags(purge)
