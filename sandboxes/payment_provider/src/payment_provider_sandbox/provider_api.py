"""Server-to-server endpoints: querydr, health, metrics."""

from __future__ import annotations

import json
import logging
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from .runtime import SandboxDep
from .status_api import answer_query

router = APIRouter()
log = logging.getLogger(__name__)


@router.post("/merchant_webapi/api/transaction")
async def transaction_api(request: Request, sandbox: SandboxDep) -> JSONResponse:
    body: Any
    try:
        body = json.loads(await request.body())
    except ValueError:
        body = None  # answered as a malformed request (03), signed like every answer
    answer = answer_query(body, sandbox.settings, sandbox.store, sandbox.clock())
    sandbox.metrics.queries.labels(answer["vnp_ResponseCode"]).inc()
    log.info(
        "querydr answered",
        extra={"txn_ref": answer.get("vnp_TxnRef"), "response_code": answer["vnp_ResponseCode"]},
    )
    return JSONResponse(answer)


@router.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/metrics")
async def metrics(sandbox: SandboxDep) -> Response:
    return Response(generate_latest(sandbox.metrics.registry), media_type=CONTENT_TYPE_LATEST)
