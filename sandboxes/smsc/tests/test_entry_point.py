"""`smsc-sandbox` as a process: settings from the environment, JSON logs, clean SIGTERM stop."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from mobi_smpp import SmppClient
from smsc_sandbox import SmscSettings

ENTRY_POINT = Path(sys.executable).with_name("smsc-sandbox")
OTP = "Mã OTP của bạn là 918273. Không chia sẻ mã này với bất kỳ ai."


async def read_until_started(
    process: asyncio.subprocess.Process,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    assert process.stdout is not None
    seen: list[dict[str, Any]] = []
    while True:
        line = await asyncio.wait_for(process.stdout.readline(), 15)
        assert line, "sandbox exited before starting"
        entry = orjson.loads(line)
        seen.append(entry)
        if entry["msg"] == "sandbox started":
            return seen, entry


async def test_sandbox_process_serves_logs_json_without_text_and_stops_on_sigterm(tmp_path: Path) -> None:
    record_file = tmp_path / "messages.jsonl"
    env = os.environ | {
        "SMSC_SMPP_PORT": "0",
        "SMSC_HTTP_PORT": "0",
        "SMSC_PASSWORD": "otp-pw",
        "SMSC_RECORD_FILE": str(record_file),
    }
    process = await asyncio.create_subprocess_exec(
        ENTRY_POINT, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    try:
        startup_lines, started = await read_until_started(process)
        async with SmppClient(
            host="127.0.0.1", port=started["smpp_port"], system_id="mymobifone", password="otp-pw"
        ) as client:
            await client.submit("MobiFone", "84901234567", OTP)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{started['http_port']}") as http:
            assert (await http.get("/health")).json() == {"status": "ok"}
            assert (await http.get("/messages/latest", params={"to": "0901234567"})).json()["text"] == OTP
        process.send_signal(signal.SIGTERM)
        stdout, stderr = await asyncio.wait_for(process.communicate(), 15)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()

    assert process.returncode == 0, stderr.decode()
    entries = startup_lines + [orjson.loads(line) for line in stdout.splitlines()]
    events = [entry["msg"] for entry in entries]
    for expected in (
        "bind",
        "submit_sm",
        "message stored",
        "unbind",
        "shutdown signal received",
        "sandbox stopped",
    ):
        assert expected in events
    stored = next(entry for entry in entries if entry["msg"] == "message stored")
    assert (stored["destination"], stored["text_length"]) == ("84901234567", len(OTP))
    everything_logged = b"\n".join(orjson.dumps(entry) for entry in entries).decode() + stderr.decode()
    assert "918273" not in everything_logged  # the OTP code is a secret
    assert orjson.loads(record_file.read_text(encoding="utf-8"))["text"] == OTP


def test_settings_come_from_smsc_environment_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SMSC_SMPP_PORT", "12775")
    monkeypatch.setenv("SMSC_THROTTLE_PER_SECOND", "50")
    monkeypatch.setenv("SMSC_SYSTEM_ID", "other")
    settings = SmscSettings()
    assert (settings.smpp_port, settings.throttle_per_second, settings.system_id) == (12775, 50, "other")
    assert (settings.smpp_host, settings.http_port, settings.record_file) == ("127.0.0.1", 8191, None)


def test_password_longer_than_smpp_allows_is_refused_at_startup(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SMSC_PASSWORD", "smsc-secret")
    with pytest.raises(ValueError, match="at most 8 ASCII characters"):
        SmscSettings()
