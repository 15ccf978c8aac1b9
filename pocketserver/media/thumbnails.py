"""Thumbnails with Pillow: size selection, crop and scale, animation, and refusing bombs.

Spec: client-server-api, "Content repository" > "Thumbnails".

Everything here is blocking; the repository calls `make_thumbnail` through asyncio.to_thread.
Pillow is imported by the first thumbnail, not at start: it is ~8 ms of start-up and ~2.5 MiB of
memory that a server nobody sends images to never needs.
"""
from __future__ import annotations

import io
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from PIL import Image

# Spec: "Thumbnails": the dimensions and methods servers SHOULD produce (Synapse's defaults too).
THUMBNAIL_SIZES: tuple[tuple[int, int, str], ...] = (
    (32, 32, "crop"), (96, 96, "crop"), (320, 240, "scale"), (640, 480, "scale"), (800, 600, "scale"))

THUMBNAILABLE_TYPES = frozenset({"image/jpeg", "image/jpg", "image/pjpeg", "image/png", "image/apng",
                                 "image/gif", "image/webp"})
# Only these decoders ever see uploaded bytes, whatever the file claims to be.
PILLOW_FORMATS = ("JPEG", "PNG", "GIF", "WEBP")
FORMAT_TYPES = {"JPEG": "image/jpeg", "PNG": "image/png", "GIF": "image/gif", "WEBP": "image/webp"}

# Synapse's max_image_pixels default: a 32-megapixel RGBA image decodes to 128 MB.
MAX_IMAGE_PIXELS = 32_000_000
# An animated thumbnail keeps every output frame in memory and decodes every input frame;
# past these it is made static instead (measured: 16 Mpx of RGBA frames is ~64 MB).
MAX_ANIMATED_OUTPUT_PIXELS = 16_000_000
MAX_ANIMATED_INPUT_PIXELS = 200_000_000
MAX_FRAMES = 500


class CannotThumbnail(Exception):
    """The content is not an image this server thumbnails (or it does not decode)."""


class ImageTooLarge(Exception):
    """The image claims more pixels than MAX_IMAGE_PIXELS; it was not decoded."""


class Thumbnail(NamedTuple):
    """A made thumbnail, or (`original`, no data) when the source itself should be served."""

    data: bytes
    content_type: str
    original: bool = False


def choose_thumbnail_size(width: int, height: int, method: str) -> tuple[int, int, str]:
    """The standard size that serves a request for width x height by method.

    Spec: "Thumbnails": never smaller than asked unless the content is; so take the smallest
    size of the method at least as large as asked, then any method's, then the largest.
    """
    def fits(size: tuple[int, int, str]) -> bool:
        return size[0] >= width and size[1] >= height

    same = [s for s in THUMBNAIL_SIZES if s[2] == method and fits(s)]
    if same:
        return same[0]
    other = [s for s in THUMBNAIL_SIZES if fits(s)]
    return other[0] if other else THUMBNAIL_SIZES[-1]


def scaled_size(src_w: int, src_h: int, box_w: int, box_h: int) -> tuple[int, int]:
    """The largest size with the source's aspect that fits in the box (Synapse's `aspect`), and
    never larger than the source: spec, "Thumbnails" ("MUST NOT upscale thumbnails under any
    circumstance")."""
    if box_w * src_h < box_h * src_w:
        size = box_w, max(1, (box_w * src_h) // src_w)
    else:
        size = max(1, (box_h * src_w) // src_h), box_h
    return (src_w, src_h) if size[0] >= src_w or size[1] >= src_h else size


def cropped_size(src_w: int, src_h: int, box_w: int, box_h: int) -> tuple[int, int]:
    """The box shrunk (aspect kept) until the source covers it, so cropping never upscales."""
    factor = min(1.0, src_w / box_w, src_h / box_h)
    return max(1, int(box_w * factor)), max(1, int(box_h * factor))


def _open(source: Path) -> Image.Image:
    """Open without decoding and refuse images claiming too many pixels."""
    from PIL import Image
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(source, formats=PILLOW_FORMATS)
    except Image.DecompressionBombError:
        raise ImageTooLarge("image has too many pixels") from None
    except (OSError, ValueError, SyntaxError) as exc:   # PIL.UnidentifiedImageError is an OSError
        raise CannotThumbnail(f"not a supported image: {exc}") from None
    width, height = img.size
    if width < 1 or height < 1:
        img.close()
        raise CannotThumbnail("image has no pixels")
    if width * height > MAX_IMAGE_PIXELS:
        img.close()
        raise ImageTooLarge(f"image is {width}x{height}")
    return img


def _resize(frame: Image.Image, box: tuple[int, int], method: str) -> Image.Image:
    from PIL import Image, ImageOps
    src_w, src_h = frame.size
    if method == "crop":
        out_w, out_h = cropped_size(src_w, src_h, *box)
        return ImageOps.fit(frame, (out_w, out_h), Image.Resampling.LANCZOS)
    return frame.resize(scaled_size(src_w, src_h, *box), Image.Resampling.LANCZOS)


def _fits_already(img: Image.Image, box: tuple[int, int]) -> bool:
    return img.size[0] <= box[0] and img.size[1] <= box[1]


def make_thumbnail(source: Path, width: int, height: int, method: str, animated: bool) -> Thumbnail:
    """Thumbnail the image at `source` into the standard size width x height by `method`.

    Raises CannotThumbnail or ImageTooLarge; never decodes an image that is too large.
    """
    img = _open(source)
    try:
        fmt = img.format or ""
        frames = getattr(img, "n_frames", 1)
        is_animated = frames > 1 and fmt in ("GIF", "WEBP", "PNG")
        box = (width, height)
        if _fits_already(img, box) and (animated or not is_animated):
            # Spec: "Thumbnails": content smaller than asked is served as it is.
            return Thumbnail(b"", FORMAT_TYPES[fmt], original=True)
        try:
            if animated and is_animated and _animation_affordable(img, frames, box, method):
                return _animated_thumbnail(img, box, method)
            return _static_thumbnail(img, box, method)
        except (OSError, ValueError, SyntaxError, EOFError) as exc:
            raise CannotThumbnail(f"image does not decode: {exc}") from None
    finally:
        img.close()


def _static_thumbnail(img: Image.Image, box: tuple[int, int], method: str) -> Thumbnail:
    from PIL import ImageOps
    fmt = img.format
    if fmt == "JPEG":
        # Decode at a reduced DCT scale: a 24-megapixel photo never exists in memory in full.
        side = max(box)
        img.draft("RGB", (side, side))
    img.seek(0)
    img.load()
    frame = ImageOps.exif_transpose(img) if fmt == "JPEG" else img
    if fmt == "JPEG":
        out = _resize(frame.convert("RGB"), box, method)
        buf = io.BytesIO()
        out.save(buf, format="JPEG", quality=80, optimize=True)
        return Thumbnail(buf.getvalue(), "image/jpeg")
    has_alpha = frame.mode in ("RGBA", "LA", "PA") or "transparency" in frame.info
    out = _resize(frame.convert("RGBA" if has_alpha else "RGB"), box, method)
    buf = io.BytesIO()
    out.save(buf, format="PNG", optimize=False)
    return Thumbnail(buf.getvalue(), "image/png")


def _animation_affordable(img: Image.Image, frames: int, box: tuple[int, int], method: str) -> bool:
    src_w, src_h = img.size
    out_w, out_h = (cropped_size if method == "crop" else scaled_size)(src_w, src_h, *box)
    return (frames <= MAX_FRAMES and frames * src_w * src_h <= MAX_ANIMATED_INPUT_PIXELS
            and frames * out_w * out_h <= MAX_ANIMATED_OUTPUT_PIXELS)


def _animated_thumbnail(img: Image.Image, box: tuple[int, int], method: str) -> Thumbnail:
    """An animated WebP (the spec's preferred animated type) of every frame."""
    from PIL import ImageSequence
    out_frames: list[Image.Image] = []
    durations: list[int] = []
    for frame in ImageSequence.Iterator(img):
        durations.append(int(frame.info.get("duration", 100)) or 100)
        out_frames.append(_resize(frame.convert("RGBA"), box, method))
    buf = io.BytesIO()
    out_frames[0].save(buf, format="WEBP", save_all=True, append_images=out_frames[1:],
                       duration=durations, loop=int(img.info.get("loop", 0)), quality=80)
    return Thumbnail(buf.getvalue(), "image/webp")
