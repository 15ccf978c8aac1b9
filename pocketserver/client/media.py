"""Content repository endpoints: authenticated /_matrix/client/v1/media and the legacy /_matrix/media.

Spec: client-server-api, "Content repository" (authed-content-repo.yaml, content-repo.yaml).
"""
from __future__ import annotations

from typing import Any

from quart import Blueprint, Response, request
from quart.blueprints import BlueprintSetupState

from pocketserver.errors import InvalidParam, MissingParam, NotFound, Unrecognized
from pocketserver.media.repository import DEFAULT_TIMEOUT_MS
from pocketserver.media.serving import (content_disposition, file_response, install_upload_streaming,
                                        is_inline_type, iter_upload_body, serving_content_type)
from pocketserver.server import Server, current_server
from pocketserver.storage.media import MediaRecord

bp = Blueprint("media", __name__)

AUTHED = "/_matrix/client/v1/media"
LEGACY = ("/_matrix/media/v3", "/_matrix/media/r0", "/_matrix/media/v1")


@bp.record_once
def _stream_uploads(state: BlueprintSetupState) -> None:
    """Uploads may exceed the app's JSON body limit, and must stream to disk with backpressure."""
    server = state.app.config.get("POCKETSERVER")
    if server is not None:
        install_upload_streaming(state.app, server.config.max_upload_size)


def _legacy(path: str) -> Any:
    """Route decorator for every legacy media prefix.

    Rules with an address in them set merge_slashes=False: an encoded "//" in an address must
    not be redirected into a different, valid-looking address.
    """
    def register(view: Any) -> Any:
        for i, prefix in enumerate(LEGACY):
            bp.add_url_rule(prefix + path, view.__name__ if i == 0 else f"{view.__name__}_{i}", view,
                            methods=["GET"], merge_slashes=False)
        return view
    return register


def _int_arg(name: str, default: int | None = None) -> int:
    raw = request.args.get(name)
    if raw is None:
        if default is None:
            raise MissingParam(f"Missing integer query parameter {name}")
        return default
    try:
        return int(raw)
    except ValueError:
        raise InvalidParam(f"Query parameter {name} must be an integer") from None


def _bool_arg(name: str) -> bool:
    raw = request.args.get(name, "false")
    if raw not in ("true", "false"):
        raise InvalidParam(f"Query parameter {name} must be true or false")
    return raw == "true"


def _serve(path: Any, media_type: str | None, filename: str | None, etag: str | None, *,
           authenticated: bool, inline: bool | None = None) -> Response:
    content_type = serving_content_type(media_type)
    disposition = content_disposition(is_inline_type(content_type) if inline is None else inline, filename)
    try:
        return file_response(path, content_type=content_type, disposition=disposition, etag=etag,
                             request_headers=request.headers, authenticated=authenticated,
                             head=request.method == "HEAD")
    except FileNotFoundError:
        raise NotFound("Media file is missing") from None


async def _download(server: Server, server_name: str, media_id: str, file_name: str | None, *,
                    legacy: bool) -> Response:
    record = await server.media.get_for_download(server_name, media_id, legacy=legacy,
                                                 timeout_ms=_int_arg("timeout_ms", DEFAULT_TIMEOUT_MS))
    return _serve(server.media.content_path(record), record.media_type, file_name or record.upload_name,
                  record.content_hash, authenticated=not legacy)


async def _thumbnail(server: Server, server_name: str, media_id: str, *, legacy: bool) -> Response:
    width, height = _int_arg("width"), _int_arg("height")
    if width < 1 or height < 1:
        raise InvalidParam("width and height must be positive")
    method = request.args.get("method", "scale")
    if method not in ("crop", "scale"):
        raise InvalidParam("method must be crop or scale")
    animated = _bool_arg("animated")
    record: MediaRecord = await server.media.get_for_download(
        server_name, media_id, legacy=legacy, timeout_ms=_int_arg("timeout_ms", DEFAULT_TIMEOUT_MS))
    thumb = await server.media.thumbnail(record, width, height, method, animated)
    extension = thumb.content_type.split("/", 1)[1]
    return _serve(thumb.path, thumb.content_type, f"thumbnail.{extension}",
                  f"{record.content_hash}-{thumb.path.name}", authenticated=not legacy, inline=True)


# ---- authenticated media (Matrix 1.11) ----------------------------------------------------

@bp.get(f"{AUTHED}/config")
async def get_config_authed() -> dict:
    """operationId getConfigAuthed. Spec: "GET /_matrix/client/v1/media/config"."""
    server = current_server()
    await server.auth.require_user(request)
    return server.media.media_config()


@bp.get(f"{AUTHED}/download/<server_name>/<media_id>", merge_slashes=False)
async def get_content_authed(server_name: str, media_id: str) -> Response:
    """operationId getContentAuthed. Spec: "GET /_matrix/client/v1/media/download/{serverName}/{mediaId}"."""
    server = current_server()
    await server.auth.require_user(request, allow_guest=True)      # guests too, since v1.12
    return await _download(server, server_name, media_id, None, legacy=False)


@bp.get(f"{AUTHED}/download/<server_name>/<media_id>/<path:file_name>", merge_slashes=False)
async def get_content_override_name_authed(server_name: str, media_id: str, file_name: str) -> Response:
    """operationId getContentOverrideNameAuthed.

    Spec: "GET /_matrix/client/v1/media/download/{serverName}/{mediaId}/{fileName}".
    """
    server = current_server()
    await server.auth.require_user(request, allow_guest=True)      # guests too, since v1.12
    return await _download(server, server_name, media_id, file_name, legacy=False)


@bp.get(f"{AUTHED}/thumbnail/<server_name>/<media_id>", merge_slashes=False)
async def get_content_thumbnail_authed(server_name: str, media_id: str) -> Response:
    """operationId getContentThumbnailAuthed. Spec: "GET /_matrix/client/v1/media/thumbnail/{serverName}/{mediaId}"."""
    server = current_server()
    await server.auth.require_user(request, allow_guest=True)      # guests too, since v1.12
    return await _thumbnail(server, server_name, media_id, legacy=False)


@bp.get(f"{AUTHED}/preview_url")
async def get_url_preview_authed() -> dict:
    """operationId getUrlPreviewAuthed. Spec: "GET /_matrix/client/v1/media/preview_url"."""
    return await _preview_url()


async def _preview_url() -> dict:
    server = current_server()
    if server.media.previewer is None:
        raise Unrecognized("Unrecognized request")   # as Synapse, which registers no route then
    await server.auth.require_user(request)
    url = request.args.get("url")
    if not url:
        raise MissingParam("Missing url query parameter")
    _int_arg("ts", 0)
    return await server.media.preview_url(url)


# ---- uploads (still under /_matrix/media) -------------------------------------------------

@bp.post("/_matrix/media/v3/upload")
@bp.post("/_matrix/media/r0/upload")
@bp.post("/_matrix/media/v1/upload")
async def upload_content() -> dict:
    """operationId uploadContent. Spec: "POST /_matrix/media/v3/upload"."""
    server = current_server()
    requester = await server.auth.require_user(request)
    content_uri = await server.media.upload(
        requester.user_id, iter_upload_body(request.body), content_length=request.content_length,
        media_type=request.headers.get("Content-Type"), upload_name=request.args.get("filename"))
    return {"content_uri": content_uri}


@bp.put("/_matrix/media/v3/upload/<server_name>/<media_id>", merge_slashes=False)
async def upload_content_to_mxc(server_name: str, media_id: str) -> dict:
    """operationId uploadContentToMXC. Spec: "PUT /_matrix/media/v3/upload/{serverName}/{mediaId}"."""
    server = current_server()
    requester = await server.auth.require_user(request)
    await server.media.upload_to(
        requester.user_id, server_name, media_id, iter_upload_body(request.body),
        content_length=request.content_length, media_type=request.headers.get("Content-Type"),
        upload_name=request.args.get("filename"))
    return {}


@bp.post("/_matrix/media/v1/create")
async def create_content() -> dict:
    """operationId createContent. Spec: "POST /_matrix/media/v1/create"."""
    server = current_server()
    requester = await server.auth.require_user(request)
    return await server.media.create(requester.user_id)


# ---- legacy unauthenticated media (deprecated in Matrix 1.11, frozen) ------------------------

@_legacy("/config")
async def get_config() -> dict:
    """operationId getConfig. Spec: "GET /_matrix/media/v3/config"."""
    server = current_server()
    await server.auth.require_user(request)
    return server.media.media_config()


@_legacy("/download/<server_name>/<media_id>")
async def get_content(server_name: str, media_id: str) -> Response:
    """operationId getContent. Spec: "GET /_matrix/media/v3/download/{serverName}/{mediaId}"."""
    return await _download(current_server(), server_name, media_id, None, legacy=True)


@_legacy("/download/<server_name>/<media_id>/<path:file_name>")
async def get_content_override_name(server_name: str, media_id: str, file_name: str) -> Response:
    """operationId getContentOverrideName.

    Spec: "GET /_matrix/media/v3/download/{serverName}/{mediaId}/{fileName}".
    """
    return await _download(current_server(), server_name, media_id, file_name, legacy=True)


@_legacy("/thumbnail/<server_name>/<media_id>")
async def get_content_thumbnail(server_name: str, media_id: str) -> Response:
    """operationId getContentThumbnail. Spec: "GET /_matrix/media/v3/thumbnail/{serverName}/{mediaId}"."""
    return await _thumbnail(current_server(), server_name, media_id, legacy=True)


@_legacy("/preview_url")
async def get_url_preview() -> dict:
    """operationId getUrlPreview. Spec: "GET /_matrix/media/v3/preview_url"."""
    return await _preview_url()
