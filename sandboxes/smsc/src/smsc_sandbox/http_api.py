"""HTTP API for tests and the demo: read what the SMSC received."""

from __future__ import annotations

from typing import Annotated

from fastapi import FastAPI, HTTPException, Query, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from .metrics import SmscMetrics
from .store import MessageRecord, MessageStore

ToParam = Annotated[
    str | None, Query(description="Destination MSISDN: 0901234567, 84901234567 and +84901234567 all match")
]


def create_http_app(store: MessageStore, metrics: SmscMetrics) -> FastAPI:
    app = FastAPI(title="SMSC sandbox", summary="Messages received over SMPP v3.4")

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/messages")
    async def list_messages(
        to: ToParam = None, limit: Annotated[int, Query(ge=1, le=1000)] = 20
    ) -> list[MessageRecord]:
        """Newest first."""
        return store.newest(to, limit)

    @app.get("/messages/latest", responses={404: {"description": "No message (to that number)"}})
    async def latest_message(to: ToParam = None) -> MessageRecord:
        found = store.newest(to, limit=1)
        if not found:
            raise HTTPException(status_code=404, detail="no message" + (f" to {to}" if to else ""))
        return found[0]

    @app.delete("/messages")
    async def clear_messages() -> dict[str, int]:
        return {"deleted": store.clear()}

    @app.get("/metrics")
    async def prometheus_metrics() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return app
