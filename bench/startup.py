#!/usr/bin/env python3
"""Start-up time: from `pocketserver serve` to its first /versions answer, warm and cold.

Starts pocketserver on 127.0.0.1 again and again, each time on an empty data directory ("empty")
and on the data directory of an earlier start ("restart"), and prints the median times. With
--cold, the compiled modules and extension modules of the Python the server runs on (its standard
library and site-packages) are dropped from the page cache before each start
(POSIX_FADV_DONTNEED), as after a reboot or a long idle spell: the case the module read-ahead
(pocketserver/readahead.py) is for. With --pause S, each start follows `sync` and S seconds of
sleep, as each start of compare.sh does (S = 2): a machine that runs slower after a pause
(bench/wakeup.py) shows it here. Use a regular install (`pip install .`), which has its .pyc
files; see docs/performance.md.

    .venv/bin/python bench/startup.py --python ~/.cache/pocket-bench/run-venv/bin/python --cold
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def installation_dirs(python: str) -> list[str]:
    """The standard library and site-packages folders of `python`."""
    out = subprocess.run([python, "-c", "import sysconfig; p = sysconfig.get_paths(); "
                          "print(p['stdlib']); print(p['platstdlib']); print(p['purelib']); print(p['platlib'])"],
                         capture_output=True, text=True, check=True).stdout
    return sorted(set(out.split()))


def evict(dirs: list[str]) -> int:
    """Drop every .pyc and .so file under `dirs` from the page cache; returns how many."""
    dropped = 0
    for top in dirs:
        for folder, _, files in os.walk(top):
            for name in files:
                if name.endswith((".pyc", ".so")):
                    try:
                        fd = os.open(os.path.join(folder, name), os.O_RDONLY)
                    except OSError:
                        continue
                    try:
                        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
                        dropped += 1
                    finally:
                        os.close(fd)
    return dropped


def time_start(python: str, config: Path, port: int, timeout: float = 60.0) -> float:
    """Seconds from starting the server to its first 200 from /versions; the server is stopped after."""
    url = f"http://127.0.0.1:{port}/_matrix/client/versions"
    started = time.monotonic()
    script = Path(python).parent / "pocketserver"      # the installed command, as people start it
    command = [str(script)] if script.exists() else [python, "-m", "pocketserver"]
    proc = subprocess.Popen([*command, "serve", "--config", str(config)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"the server exited with {proc.returncode}")
            try:
                with urllib.request.urlopen(url, timeout=timeout) as r:
                    if r.status == 200:
                        return time.monotonic() - started
            except OSError:
                pass
            if time.monotonic() - started > timeout:
                raise RuntimeError("no answer from the server")
            time.sleep(0.002)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--python", default=sys.executable, help="a Python with pocketserver installed (default: this one)")
    ap.add_argument("--runs", type=int, default=7, help="starts per case (default 7)")
    ap.add_argument("--cold", action="store_true", help="drop the modules from the page cache before each start")
    ap.add_argument("--pause", type=float, default=0.0, metavar="S",
                    help="`sync`, then sleep S seconds before each start, as compare.sh does (it uses 2)")
    ap.add_argument("--json", metavar="FILE", help="also write the times as JSON")
    args = ap.parse_args()
    dirs = installation_dirs(args.python) if args.cold else []
    work = Path(tempfile.mkdtemp(prefix="pocket-startup-"))
    port = free_port()
    config = work / "pocketserver.toml"
    config.write_text(f'server_name = "localhost"\nhost = "127.0.0.1"\nport = {port}\n'
                      f'data_dir = "{work / "data"}"\nlan_discovery = false\nlog_level = "warning"\n')
    times: dict[str, list[float]] = {"empty": [], "restart": []}
    try:
        for case in ("empty", "restart"):
            for _ in range(args.runs):
                if case == "empty":
                    shutil.rmtree(work / "data", ignore_errors=True)
                if dirs:
                    evict(dirs)
                    time.sleep(0.2)
                if args.pause:
                    os.sync()
                    time.sleep(args.pause)
                times[case].append(time_start(args.python, config, port))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    label = ("cold (modules evicted)" if args.cold else "warm") + (f", {args.pause:g} s pause" if args.pause else "")
    for case, values in times.items():
        print(f"{label:24} {case:8} median {statistics.median(values):.3f} s   "
              + " ".join(f"{v:.3f}" for v in values))
    if args.json:
        Path(args.json).write_text(json.dumps({"cold": args.cold, "pause": args.pause, "python": args.python, **times},
                                              indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
