"""Requests/s and latency of GET /api/v1/me/balances through the nginx gateway against the
account service called directly, in the same run, with wrk.

The gateway here is the platform's own config rendered on a second port with the bench's
address exempt from the per-client rate limit (which exists to stop exactly this kind of
traffic). Rounds alternate direct and gateway so drift hits both.

    python bench/api_latency.py [--seconds 10] [--connections 32] [--rounds 2]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
ACCOUNT = os.environ.get("ACCOUNT_URL", "http://127.0.0.1:8101")
BENCH_GATEWAY_PORT = int(os.environ.get("BENCH_GATEWAY_PORT", "18080"))
PATH = "/api/v1/me/balances"
DEMO = "84901234567"


def token(gateway: str) -> str:
    transport = httpx.HTTPTransport(local_address="127.0.0.2")  # the carrier proxy: header login
    with httpx.Client(base_url=gateway, transport=transport, trust_env=False) as client:
        r = client.post("/api/v1/auth/header-login", headers={"X-MSISDN": DEMO})
        r.raise_for_status()
        return str(r.json()["access_token"])


def start_gateway(workdir: Path) -> subprocess.Popen[bytes]:
    conf = workdir / "conf"
    env = os.environ | {
        "GATEWAY_PORT": str(BENCH_GATEWAY_PORT),
        "RATE_LIMIT_EXEMPT_CIDRS": "127.0.0.1/32",
        "GATEWAY_RUN_DIR": str(workdir),
        "LOGS": str(workdir),
    }
    (workdir / "temp").mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [str(ROOT / "deploy/gateway/render.sh"), str(conf)], check=True, env=env, capture_output=True
    )
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    proc = subprocess.Popen([nginx, "-p", f"{conf}/", "-c", f"{conf}/nginx.conf", "-e", "stderr"], env=env)
    for _ in range(100):
        try:
            httpx.get(f"http://127.0.0.1:{BENCH_GATEWAY_PORT}/healthz", timeout=0.2)
            return proc
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.terminate()
    raise RuntimeError("bench gateway did not start")


def wrk(url: str, auth: str, seconds: int, connections: int) -> dict[str, float]:
    out = subprocess.run(
        [
            "wrk",
            "-t2",
            f"-c{connections}",
            f"-d{seconds}s",
            "--latency",
            "-H",
            f"Authorization: Bearer {auth}",
            url,
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if non_2xx:
        raise RuntimeError(f"{url}: {non_2xx.group(1)} failed responses\n{out}")
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    percentiles = {p: _ms(v) for p, v in re.findall(r"^\s+(50|99)%\s+([\d.]+\w+)", out, re.MULTILINE)}
    return {"rps": rps, "p50": percentiles["50"], "p99": percentiles["99"]}


def _ms(value: str) -> float:
    number, unit = re.match(r"([\d.]+)(\w+)", value).groups()  # type: ignore[union-attr]
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-gw-") as tmp:
        gateway = start_gateway(Path(tmp))
        try:
            auth = token(f"http://127.0.0.1:{BENCH_GATEWAY_PORT}")
            targets = {
                "direct": f"{ACCOUNT}{PATH}",
                "gateway": f"http://127.0.0.1:{BENCH_GATEWAY_PORT}{PATH}",
            }
            wrk(targets["direct"], auth, 2, args.connections)  # warm up
            results: dict[str, list[dict[str, float]]] = {"direct": [], "gateway": []}
            for round_no in range(args.rounds):
                for name, url in targets.items():
                    r = wrk(url, auth, args.seconds, args.connections)
                    results[name].append(r)
                    print(
                        f"round {round_no + 1} {name:8} {r['rps']:8,.0f} req/s  p50 {r['p50']:6.1f} ms  p99 {r['p99']:6.1f} ms",
                        flush=True,
                    )
        finally:
            gateway.terminate()
            gateway.wait(timeout=10)
    summary = {
        name: {k: statistics.median(r[k] for r in rs) for k in ("rps", "p50", "p99")}
        for name, rs in results.items()
    }
    d, g = summary["direct"], summary["gateway"]
    print(
        f"\nGET {PATH}, {args.connections} connections, {args.seconds}s x {args.rounds} rounds (median):\n"
        f"  direct   {d['rps']:8,.0f} req/s   p50 {d['p50']:6.1f} ms   p99 {d['p99']:6.1f} ms\n"
        f"  gateway  {g['rps']:8,.0f} req/s   p50 {g['p50']:6.1f} ms   p99 {g['p99']:6.1f} ms\n"
        f"  gateway / direct throughput  {g['rps'] / d['rps']:.2f}x   (target >= 0.80x)"
    )


if __name__ == "__main__":
    main()
