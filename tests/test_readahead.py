"""Reading the start-up modules ahead: the list covers what a start imports, and misses are harmless."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pocketserver import readahead
from pocketserver.__main__ import _command_line

# Imports what `pocketserver serve` imports after pocketserver.__main__, then reports every module
# file loaded from then on and what readahead.startup_files() lists.
_PROBE = """
import json, sys
import pocketserver.__main__
from pocketserver import readahead
before = set(sys.modules)
import asyncio, signal, socket
from hypercorn.asyncio import serve
from hypercorn.config import Config
from pocketserver.app import create_app
from pocketserver.config import load
from pocketserver.server import limit_malloc_arenas
loaded = []
for name in set(sys.modules) - before:
    spec = getattr(sys.modules[name], "__spec__", None)
    if spec is not None and spec.has_location and spec.origin:
        loaded.append(spec.cached if spec.cached else spec.origin)
print(json.dumps({"loaded": loaded, "listed": list(readahead.startup_files())}))
"""


def test_the_list_covers_the_modules_a_start_imports() -> None:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}   # pyc files to list
    out = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, env=env,
                         timeout=120, check=True).stdout
    report = json.loads(out)
    loaded, listed = set(report["loaded"]), set(report["listed"])
    assert len(loaded) > 300
    missed = sorted(p for p in loaded - listed if os.path.exists(p))
    # A dependency's new release may import a module or two more; more than that means the
    # lists in readahead.py need updating.
    assert len(missed) <= len(loaded) // 50, missed


def test_packages_are_read_whole_and_missing_names_skipped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tag = sys.implementation.cache_tag
    suffix = readahead.EXTENSION_SUFFIXES[0]
    files = [tmp_path / "fakepkg" / "__pycache__" / f"__init__.{tag}.pyc",
             tmp_path / "fakepkg" / "sub" / "__pycache__" / f"mod.{tag}.pyc",
             tmp_path / "fakepkg" / "sub" / f"_speedups{suffix}",
             tmp_path / f"_fakeext{suffix}"]
    others = [tmp_path / "fakepkg" / "__pycache__" / "__init__.cpython-21.pyc",     # another Python's
              tmp_path / "fakepkg" / "tests" / "__pycache__" / f"test_x.{tag}.pyc",  # tests are skipped
              tmp_path / "fakepkg" / "sub" / "mod.py"]
    for f in files + others:
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_bytes(b"x")
    monkeypatch.setattr(sys, "path", ["", str(tmp_path / "nowhere"), str(tmp_path)])
    monkeypatch.setattr(readahead, "PACKAGES", ("no_such_package", "fakepkg", "_fakeext"))
    monkeypatch.setattr(readahead, "STDLIB", ("no_such_module",))
    listed = list(readahead.startup_files())
    assert set(map(str, files)) <= set(listed)
    assert not set(map(str, others)) & set(listed)
    assert [f for f in listed if os.path.exists(f)] == [f for f in listed if f in set(map(str, files))]
    assert readahead.start() == len(files)


def test_the_frozen_executable_reads_nothing_ahead(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    assert readahead.start() == 0


def test_only_serving_reads_ahead() -> None:
    assert _command_line([])[0] == "serve"
    assert _command_line(["--port", "8009"]) == ("serve", ["serve", "--port", "8009"])
    assert _command_line(["--log-level", "debug"]) == ("serve", ["--log-level", "debug", "serve"])
    assert _command_line(["--log-level=info", "user", "list"]) == ("user", ["--log-level=info", "user", "list"])
    assert _command_line(["--version"])[0] == "--version"
    assert _command_line(["token", "list"])[0] == "token"
