"""The installed `payment-provider-sandbox` command, run as a real process configured by env."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from vnpay import GatewayConfig, PaymentOrder, build_payment_url

from .conftest import SECRET, TMN_CODE, Merchant


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def wait_healthy(base: str, process: subprocess.Popen[bytes]) -> None:
    async with httpx.AsyncClient(trust_env=False) as http:
        for _ in range(200):
            assert process.poll() is None, "sandbox exited early"
            try:
                if (await http.get(f"{base}/health")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.05)
    raise AssertionError("sandbox did not become healthy")


async def test_command_serves_payments_health_and_metrics_and_logs_json_without_card_numbers(
    merchant: Merchant, tmp_path: Path
) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "PAYPROV_PORT": str(port),
        "PAYPROV_IPN_URL": merchant.ipn_url,
        "PAYPROV_IPN_RETRY_DELAYS_S": "0.05,0.1",
        "PAYPROV_RECORD_PATH": str(tmp_path / "journal.jsonl"),
    }
    command = Path(sys.executable).parent / "payment-provider-sandbox"
    process = subprocess.Popen([str(command)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        await wait_healthy(base, process)
        now = datetime.now(UTC)
        gateway = GatewayConfig(
            tmn_code=TMN_CODE,
            hash_secret=SECRET,  # type: ignore[arg-type]  # the documented default secret
            pay_url=f"{base}/paymentv2/vpcpay.html",
            return_url=f"{merchant.base_url}/return",
        )
        order = PaymentOrder(
            txn_ref="PROC-1", amount_vnd=20_000, order_info="Nap tien", client_ip="127.0.0.1",
            created_at=now, expires_at=now + timedelta(minutes=15),
        )  # fmt: skip
        merchant.orders[order.txn_ref] = order.amount_vnd
        async with httpx.AsyncClient(trust_env=False) as http:
            paid = await http.post(
                f"{base}/sandbox/pay",
                json={
                    "payment_url": build_payment_url(gateway, order),
                    "card": "4000000000003220",
                    "otp": "123456",
                },
            )
            metrics = (await http.get(f"{base}/metrics")).text
        assert paid.json()["response_code"] == "00"
        await merchant.wait_for(1)
        assert merchant.codes() == ["00"]
        assert 'payprov_payments_total{response_code="00"} 1.0' in metrics
        assert 'payprov_ipn_attempts_total{result="acknowledged"} 1.0' in metrics
    finally:
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=10)
    # uvicorn shuts down gracefully, then re-raises SIGTERM so the exit status tells the truth.
    assert process.returncode in (0, -signal.SIGTERM)
    lines = output.decode().splitlines()
    records = [json.loads(line) for line in lines]  # every line is a JSON object
    messages = {record["msg"] for record in records}
    assert {"sandbox ready", "payment decided", "ipn finished", "Application shutdown complete."} <= messages
    assert "4000000000003220" not in output.decode()
    assert "4000000000003220" not in (tmp_path / "journal.jsonl").read_text()
