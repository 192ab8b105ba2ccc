"""A campaign's delivery counts and progress, from its checkpoints."""

from __future__ import annotations

from typing import Any

from mobi_contracts.events.notify import Audience
from servicekit.mongo import Doc, Store

from .domain.audience import units_for
from .store import PROGRESS

COUNTS = ("targeted", "sent", "failed", "pruned", "deferred", "opted_out")


async def campaign_stats(store: Store, promotion: Doc) -> dict[str, Any]:
    """Counts of a campaign from its checkpoints (one read), and its progress."""
    pid = promotion["_id"]
    progress = await store[PROGRESS].find({"promotion": pid}).to_list()
    audience = Audience.model_validate(promotion["audience"])
    units = units_for(audience)
    first = {k: 0 for k in COUNTS}
    later = {k: 0 for k in COUNTS}
    finished = set()
    for p in progress:
        into = first if p["unit"].startswith("b") else later
        for k in COUNTS:
            into[k] += int(p.get(k, 0))
        if p.get("final") and p["unit"].startswith("b"):
            finished.add(p["unit"])
    return {
        "promotion_id": pid,
        "state": promotion.get("fanout"),
        "targeted": first["targeted"],
        "sent": first["sent"] + later["sent"],
        "failed": first["failed"] + later["failed"],
        "pruned": first["pruned"] + later["pruned"],
        "opted_out": first["opted_out"],
        "deferred": first["deferred"],
        "deferred_sent": later["sent"],
        "deferred_waiting": max(0, first["deferred"] - later["targeted"]),
        "units_total": len(units),
        "units_done": len(finished),
        "progress": round(len(finished) / len(units), 4) if units else 1.0,
    }
