"""bannou's restart policy (``/orchestrator/services/should-restart``) over a node's last heartbeat.

healthy -> no; degraded for less than the threshold (5 min by default) -> no; degraded longer ->
restart recommended; unavailable, expired or never seen -> restart needed. bannou says nothing
about ``overloaded`` and ``shutting_down``: overloaded -> no (load calls for scaling, not a
restart); shutting_down -> no (the node is stopping on purpose; once its key expires the answer
becomes "needed"). Pure: no Redis, no broker.
"""

from __future__ import annotations

from dataclasses import dataclass

from .contract import DEFAULT_TTL, HeartbeatRecord

DEFAULT_DEGRADED_THRESHOLD = 300.0


@dataclass(frozen=True)
class RestartDecision:
    restart: bool
    reason: str
    status: str | None = None  # None: no heartbeat (never seen or expired)
    last_seen: float | None = None
    degraded_for: float | None = None  # seconds, when degraded


def restart_decision(
    app_id: str,
    record: HeartbeatRecord | None,
    now: float,
    *,
    degraded_threshold: float = DEFAULT_DEGRADED_THRESHOLD,
    ttl: float = DEFAULT_TTL,
    known: bool = False,
) -> RestartDecision:
    """bannou's restart policy for one app id. ``known``: the app id is in the index (so a missing
    record means its heartbeat expired rather than never arrived)."""
    if record is None:
        if known:
            return RestartDecision(
                True, f"restart needed: the heartbeat of {app_id!r} expired (no heartbeat for over {ttl:g}s)"
            )
        return RestartDecision(True, f"restart needed: no heartbeat ever received from {app_id!r}")
    age = now - record.last_seen
    if age > ttl:
        return RestartDecision(
            True,
            f"restart needed: last heartbeat of {app_id!r} is {age:.0f}s old (TTL {ttl:g}s)",
            record.status,
            record.last_seen,
        )
    status = record.status
    if status == "healthy":
        return RestartDecision(False, f"{app_id!r} is healthy", status, record.last_seen)
    if status == "unavailable":
        issues = f" (issues: {'; '.join(record.issues)})" if record.issues else ""
        return RestartDecision(
            True, f"restart needed: {app_id!r} reports unavailable{issues}", status, record.last_seen
        )
    if status == "degraded":
        since = record.degraded_since if record.degraded_since is not None else record.last_seen
        degraded_for = max(0.0, now - since)
        if degraded_for > degraded_threshold:
            return RestartDecision(
                True,
                f"restart recommended: {app_id!r} degraded for {degraded_for:.0f}s"
                f" (threshold {degraded_threshold:g}s)",
                status,
                record.last_seen,
                degraded_for,
            )
        return RestartDecision(
            False,
            f"{app_id!r} degraded for {degraded_for:.0f}s, under the {degraded_threshold:g}s threshold",
            status,
            record.last_seen,
            degraded_for,
        )
    if status == "overloaded":
        return RestartDecision(
            False, f"{app_id!r} is overloaded: scale it, a restart would not help", status, record.last_seen
        )
    return RestartDecision(False, f"{app_id!r} is shutting down on purpose", status, record.last_seen)
