"""Start reading the server's compiled modules from disk before importing them.

A cold start (a Raspberry Pi at boot, or any start once the page cache has let the files go)
imports ~550 compiled modules, and each import waits for its own small read. `start()` hands the
kernel the whole list at once with `posix_fadvise(POSIX_FADV_WILLNEED)`, which queues the reads
and returns; the disk works through them while the imports run. On the development VM, with
the modules evicted from the page cache, a restart took 0.34-0.35 s without this and 0.26-0.28 s
with it; a warm start pays ~4-6 ms for listing the folders and the calls (bench/startup.py).

The list is a hint, not a manifest: the packages the serve path imports are read whole, the
standard library's modules by name, and a name that is not installed is skipped. The frozen
executable keeps its modules in one archive and needs none of this.
"""
from __future__ import annotations

import os
import sys
from importlib.machinery import EXTENSION_SUFFIXES
from typing import Iterator

# Import names of the packages a start imports, ours and those Quart and Hypercorn pull in.
PACKAGES = (
    "pocketserver", "quart", "flask", "werkzeug", "jinja2", "markupsafe", "click", "itsdangerous",
    "blinker", "hypercorn", "h11", "h2", "hpack", "hyperframe", "wsproto", "priority", "aiofiles",
    "nacl", "aiosqlite", "canonicaljson", "_cffi_backend")

# Standard library modules and packages a start imports after pocketserver.__main__ (which keeps
# its own imports light so that these come after the read-ahead).
STDLIB = (
    "_asyncio", "_bisect", "_blake2", "_bz2", "_compat_pickle", "_compression", "_contextvars",
    "_csv", "_ctypes", "_datetime", "_decimal", "_hashlib", "_heapq", "_json", "_lzma",
    "_multiprocessing", "_opcode", "_pickle", "_posixsubprocess", "_queue", "_random",
    "_sha512", "_socket", "_sqlite3", "_ssl", "_struct", "_uuid", "array", "ast", "asyncio",
    "base64", "bdb", "binascii", "bisect", "bz2", "calendar", "cmd", "code", "codeop",
    "concurrent", "contextvars", "copy", "csv", "ctypes", "dataclasses", "datetime", "decimal",
    "difflib", "dis", "email", "fcntl", "glob", "hashlib", "heapq", "hmac", "html", "http",
    "importlib", "inspect", "json", "locale", "logging", "lzma", "math", "mimetypes",
    "multiprocessing", "numbers", "opcode", "pdb", "pickle", "pkgutil", "platform", "pprint",
    "queue", "quopri", "random", "secrets", "select", "selectors", "shlex", "shutil", "signal",
    "socket", "socketserver", "sqlite3", "ssl", "struct", "subprocess", "tempfile", "tomllib",
    "unicodedata", "urllib", "uuid", "wsgiref", "zipfile", "zlib")


def start() -> int:
    """Ask the kernel to read the start-up modules ahead; returns how many files were asked for."""
    if getattr(sys, "frozen", False) or not hasattr(os, "posix_fadvise"):
        return 0
    asked = 0
    for path in startup_files():
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            continue
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_WILLNEED)
            asked += 1
        except OSError:
            pass
        finally:
            os.close(fd)
    return asked


def startup_files() -> Iterator[str]:
    """The compiled modules and extension modules a start is expected to import."""
    tag = sys.implementation.cache_tag
    if tag is None:
        return
    pyc, ext = f".{tag}.pyc", EXTENSION_SUFFIXES[0]
    listings: dict[str, frozenset[str]] = {}

    def names(folder: str) -> frozenset[str]:     # one listing per folder, not a stat per name
        if folder not in listings:
            try:
                listings[folder] = frozenset(os.listdir(folder))
            except OSError:
                listings[folder] = frozenset()
        return listings[folder]

    stdlib = os.path.dirname(os.__file__)
    for name in STDLIB:
        if name in names(stdlib):                                  # a package
            yield from _package_files(os.path.join(stdlib, name), pyc)
        elif name + pyc in names(os.path.join(stdlib, "__pycache__")):
            yield os.path.join(stdlib, "__pycache__", name + pyc)
        elif name + ext in names(os.path.join(stdlib, "lib-dynload")):
            yield os.path.join(stdlib, "lib-dynload", name + ext)
    for name in PACKAGES:
        module = sys.modules.get(name)     # pocketserver itself, wherever (even editable) installed
        if module is not None and hasattr(module, "__path__") and getattr(module, "__file__", None):
            yield from _package_files(os.path.dirname(module.__file__), pyc)
            continue
        for entry in sys.path:
            if not entry or entry == stdlib:
                continue
            if name in names(entry):
                yield from _package_files(os.path.join(entry, name), pyc)
                break
            if name + ext in names(entry):                           # a lone extension module
                yield os.path.join(entry, name + ext)
                break


def _package_files(top: str, pyc: str) -> Iterator[str]:
    """Every compiled module (for this interpreter) and extension module under `top`."""
    for folder, subfolders, files in os.walk(top):
        subfolders[:] = [s for s in subfolders if s not in ("tests", "test")]
        if os.path.basename(folder) == "__pycache__":
            yield from (os.path.join(folder, f) for f in files if f.endswith(pyc))
        else:
            yield from (os.path.join(folder, f) for f in files if f.endswith(".so"))
