"""Thumbnails: size selection, crop and scale geometry, animation and decompression bombs.

Spec: client-server-api, "Content repository" > "Thumbnails".
"""
from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import pytest
from PIL import Image

from pocketserver.media import thumbnails
from pocketserver.media.thumbnails import (CannotThumbnail, ImageTooLarge, choose_thumbnail_size,
                                           cropped_size, make_thumbnail, scaled_size)


def write_image(path: Path, size: tuple[int, int], fmt: str, color: str = "red", **save: object) -> Path:
    Image.new("RGB", size, color).save(path, format=fmt, **save)
    return path


def write_animation(path: Path, size: tuple[int, int], frames: int, fmt: str = "GIF") -> Path:
    images = [Image.new("RGB", size, c) for c in ("red", "green", "blue", "white")[:frames]]
    images[0].save(path, format=fmt, save_all=True, append_images=images[1:], duration=100, loop=0)
    return path


def png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims width x height (the pixel data is a few bytes)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
            + chunk(b"IEND", b""))


def test_standard_sizes_are_chosen_never_smaller_than_asked() -> None:
    """Spec: "Thumbnails": the five standard sizes; never smaller than requested where possible."""
    assert choose_thumbnail_size(32, 32, "crop") == (32, 32, "crop")
    assert choose_thumbnail_size(40, 40, "crop") == (96, 96, "crop")
    assert choose_thumbnail_size(100, 100, "crop") == (320, 240, "scale")   # no crop size is big enough
    assert choose_thumbnail_size(1, 1, "scale") == (320, 240, "scale")
    assert choose_thumbnail_size(641, 100, "scale") == (800, 600, "scale")
    assert choose_thumbnail_size(5000, 5000, "scale") == (800, 600, "scale")


def test_geometry_never_upscales() -> None:
    assert scaled_size(1000, 500, 320, 240) == (320, 160)
    assert scaled_size(500, 1000, 320, 240) == (120, 240)
    assert scaled_size(20, 20, 320, 240) == (20, 20)          # never upscaled
    assert scaled_size(100, 50, 640, 480) == (100, 50)
    assert cropped_size(1000, 1000, 96, 96) == (96, 96)
    assert cropped_size(50, 200, 96, 96) == (50, 50)   # keeps the asked aspect within the source


def test_scale_and_crop(tmp_path: Path) -> None:
    src = write_image(tmp_path / "wide.png", (1000, 500), "PNG")
    scaled = make_thumbnail(src, 320, 240, "scale", False)
    assert scaled.content_type == "image/png" and not scaled.original
    assert Image.open(io.BytesIO(scaled.data)).size == (320, 160)
    cropped = make_thumbnail(src, 96, 96, "crop", False)
    assert Image.open(io.BytesIO(cropped.data)).size == (96, 96)


def test_jpeg_stays_jpeg(tmp_path: Path) -> None:
    src = write_image(tmp_path / "photo.jpg", (2000, 1500), "JPEG")
    thumb = make_thumbnail(src, 640, 480, "scale", False)
    assert thumb.content_type == "image/jpeg"
    assert Image.open(io.BytesIO(thumb.data)).size == (640, 480)


def test_small_image_is_served_as_it_is(tmp_path: Path) -> None:
    """Spec: "Thumbnails": content smaller than the requested size is returned unchanged."""
    src = write_image(tmp_path / "small.png", (20, 10), "PNG")
    thumb = make_thumbnail(src, 320, 240, "scale", False)
    assert thumb.original and thumb.content_type == "image/png"


def test_animated_gif_keeps_animation_only_when_asked(tmp_path: Path) -> None:
    """Spec: getContentThumbnailAuthed, `animated`: MUST NOT animate unless asked; WebP preferred."""
    src = write_animation(tmp_path / "anim.gif", (400, 400), 3)
    animated = make_thumbnail(src, 96, 96, "crop", True)
    out = Image.open(io.BytesIO(animated.data))
    assert animated.content_type == "image/webp" and out.n_frames == 3 and out.size == (96, 96)
    still = make_thumbnail(src, 96, 96, "crop", False)
    assert still.content_type == "image/png" and getattr(Image.open(io.BytesIO(still.data)), "n_frames", 1) == 1
    # A small animated source is served as it is only when animation was asked for.
    small = write_animation(tmp_path / "small.gif", (20, 20), 2)
    assert make_thumbnail(small, 96, 96, "crop", True).original
    assert not make_thumbnail(small, 96, 96, "crop", False).original
    still_small = make_thumbnail(small, 320, 240, "scale", False)     # its first frame, not enlarged
    assert Image.open(io.BytesIO(still_small.data)).size == (20, 20)


def test_decompression_bomb_is_refused_before_decoding(tmp_path: Path, monkeypatch) -> None:
    """A 100-byte PNG claiming 50000 x 50000 pixels is refused from its header alone."""
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(png_claiming(50_000, 50_000))
    assert bomb.stat().st_size < 200
    decoded = []
    monkeypatch.setattr(Image.Image, "load", lambda self: decoded.append(1))
    with pytest.raises(ImageTooLarge):
        make_thumbnail(bomb, 96, 96, "crop", False)
    assert decoded == []
    just_over = tmp_path / "over.png"
    just_over.write_bytes(png_claiming(thumbnails.MAX_IMAGE_PIXELS // 1000 + 1, 1000))
    with pytest.raises(ImageTooLarge):
        make_thumbnail(just_over, 96, 96, "crop", False)


def test_not_an_image_and_other_formats_are_refused(tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_bytes(b"just some text, claiming to be image/png")
    with pytest.raises(CannotThumbnail):
        make_thumbnail(text, 96, 96, "crop", False)
    bmp = write_image(tmp_path / "pic.bmp", (200, 200), "BMP")   # a decoder we never use
    with pytest.raises(CannotThumbnail):
        make_thumbnail(bmp, 96, 96, "crop", False)
    truncated = tmp_path / "cut.png"
    truncated.write_bytes(write_image(tmp_path / "full.png", (500, 500), "PNG").read_bytes()[:200])
    with pytest.raises(CannotThumbnail):
        make_thumbnail(truncated, 96, 96, "crop", False)


def test_pillow_is_imported_by_the_first_thumbnail_not_at_start() -> None:
    """Pillow costs start-up time and ~2.5 MiB that a server nobody sends images to never needs."""
    import subprocess
    import sys
    code = "import sys, pocketserver.app; print('PIL' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == "False", result.stderr
