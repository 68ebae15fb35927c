"""Readiness for a balancer, and drain for maintenance.

``/healthz`` is 200 while the gateway would take a new session (engines loaded, below the
session cap or with an idle session that would give way) and 503 with the reason otherwise, so
HAProxy's health check sends new rooms elsewhere while open sessions carry on.

Drain (SIGUSR1, or ``Gateway.drain()``): new sessions get 503, ``/healthz`` says draining, and
each open session is closed with 1001 once no phrase of it is being recognized — its turn is
finished, and the client (the SDK silently, the agent by its backoff) reconnects through the
balancer to a live gateway, resending audio that has no final yet. After ``drain_timeout_s`` the
rest are closed the same way.
"""

from __future__ import annotations

import asyncio
import logging
import time

log = logging.getLogger("parley.gateway.health")

CLOSE_GOING_AWAY = 1001
DRAIN_POLL_S = 0.1


def readiness(gateway) -> tuple[int, dict]:
    admission = gateway.admission
    body = {"sessions": admission.sessions, "max_sessions": gateway.config.limits.max_sessions}
    if admission.draining:
        return 503, {"status": "draining", "reason": "draining for maintenance: no new sessions", **body}
    if not gateway.engines_ready:
        return 503, {"status": "starting", "reason": "recognizers are loading", **body}
    if not admission.has_room():
        return 503, {"status": "full", "reason": f"{admission.sessions} of {body['max_sessions']} sessions, "
                                                   "none idle long enough to give way", **body}
    return 200, {"status": "ready", **body}


async def drain(gateway) -> None:
    """Refuse new sessions; close each open one between phrases (or at the deadline)."""
    admission = gateway.admission
    if admission.draining:
        return
    admission.draining = True
    deadline_s = time.monotonic() + gateway.config.limits.drain_timeout_s
    log.info("draining: %d sessions open; new sessions are refused", admission.sessions)
    while admission.sessions:
        overdue = time.monotonic() >= deadline_s
        for slot in admission.slots:
            if overdue or not slot.in_phrase():
                admission.evict(slot, CLOSE_GOING_AWAY, "gateway draining for maintenance; reconnect")
        await asyncio.sleep(DRAIN_POLL_S)
    log.info("drained: no sessions open")
