"""One server per data directory, and the command line's way to hand it work.

`serve` holds an exclusive lock (flock) on DATA_DIR/server.pid, which names its process, for as
long as it runs; the kernel lets go of it however the process ends. A second server on the same
data directory is refused: two writers of a room's events would fork the room, each building on
the state it holds in memory. For the same reason the command that writes room events, `user
deactivate`, does all of its work only while it holds the lock itself; while a server holds it,
the command deactivates the account in the database and signals the server (WORK_SIGNAL) to make
the user leave their rooms, which the server also does for any such account when it starts.
"""
from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path
from typing import Iterator

from pocketserver.config import DATA_DIR_MODE

try:
    import fcntl
except ImportError:          # not POSIX: no lock (the server runs on Linux and macOS)
    fcntl = None  # type: ignore[assignment]

LOCK_FILE = "server.pid"
WORK_SIGNAL = getattr(signal, "SIGUSR1", None)


class AlreadyServing(Exception):
    """Another process holds the data directory's lock."""

    def __init__(self, pid: int | None) -> None:
        super().__init__(f"another pocketserver (process {pid if pid else 'unknown'}) is using this data directory")
        self.pid = pid


def hold(data_path: Path) -> int | None:
    """Take the lock and write this process's PID into the file; returns the open descriptor (the
    lock lasts until it is closed, or the process ends). Raises AlreadyServing."""
    fd = _take(data_path)
    if fd is not None:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


@contextlib.contextmanager
def offline(data_path: Path) -> Iterator[AlreadyServing | None]:
    """Hold the lock for a command's work: yields None when the command has it (no server runs on
    this data directory; none can start meanwhile), else the refusal, naming the server's PID."""
    try:
        fd = hold(data_path)
    except AlreadyServing as serving:
        yield serving
        return
    try:
        yield None
    finally:
        if fd is not None:
            os.close(fd)


def signal_server(pid: int | None) -> bool:
    """Ask the server with this PID to do the work the command line left it; False if it cannot
    be asked (gone, not a pocketserver, no such signal here)."""
    if WORK_SIGNAL is None or pid is None or pid <= 0 or not _is_pocketserver(pid):
        return False
    try:
        os.kill(pid, WORK_SIGNAL)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def ignore_work_signal() -> None:
    """From taking the lock until the server listens for it: a command's signal must not end the
    process (the signal's default action); the server's start does the work anyway."""
    if WORK_SIGNAL is not None:
        signal.signal(WORK_SIGNAL, signal.SIG_IGN)


def _is_pocketserver(pid: int) -> bool:
    """Whether the process is a pocketserver, where /proc tells (a PID read a moment after another
    process took the lock may still be the last holder's, reused since)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except FileNotFoundError:
        return not Path("/proc/self").exists()     # no /proc (macOS): trust the lock file
    except OSError:
        return False
    return b"pocketserver" in cmdline


def _take(data_path: Path) -> int | None:
    if fcntl is None:
        return None
    data_path.mkdir(mode=DATA_DIR_MODE, parents=True, exist_ok=True)
    fd = os.open(data_path / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        pid = _read_pid(fd)
        os.close(fd)
        raise AlreadyServing(pid) from None
    except BaseException:
        os.close(fd)
        raise
    return fd


def _read_pid(fd: int) -> int | None:
    text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    return int(text) if text.isdigit() else None
