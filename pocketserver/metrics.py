"""Prometheus-format counters for the benchmark and operators: loopback only, off by default."""
from __future__ import annotations

import ipaddress

from quart import Blueprint, Response, request

from pocketserver.errors import Forbidden, Unrecognized
from pocketserver.server import current_server

bp = Blueprint("metrics", __name__)


def _is_loopback(address: str | None) -> bool:
    try:
        return ipaddress.ip_address((address or "").split("%")[0]).is_loopback
    except ValueError:
        return False


@bp.get("/_pocketserver/metrics")
async def get_metrics() -> Response:
    server = current_server()
    if not server.config.enable_metrics:
        raise Unrecognized("Unrecognized request")
    if not _is_loopback(request.remote_addr):
        raise Forbidden("Metrics are only served to loopback addresses")
    stats = server.db.writer.stats if server.db.writer else None
    lines = []
    if stats is not None:
        jobs_per_commit = stats.jobs / stats.commits if stats.commits else 0.0
        for name, kind, value, help_text in (
            ("pocketserver_writer_commits_total", "counter", stats.commits, "Write transactions committed"),
            ("pocketserver_writer_jobs_total", "counter", stats.jobs, "Write jobs committed or failed alone"),
            ("pocketserver_writer_failed_jobs_total", "counter", stats.failed_jobs, "Write jobs rolled back"),
            ("pocketserver_writer_failed_commits_total", "counter", stats.failed_commits, "Batches whose commit failed"),
            ("pocketserver_writer_largest_batch", "gauge", stats.largest_batch, "Most jobs in one commit"),
            ("pocketserver_writer_jobs_per_commit", "gauge", jobs_per_commit, "Average jobs per commit"),
            ("pocketserver_writer_commit_seconds_total", "counter", stats.commit_seconds, "Time spent in batches"),
        ):
            lines += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}", f"{name} {value}"]
    return Response("\n".join(lines) + "\n", content_type="text/plain; version=0.0.4")
