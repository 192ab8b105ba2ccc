"""`stores-import FILE`: replace the store catalogue from a CSV or JSON file.

Sends the file to the stores service's internal import endpoint as the operators' tool
("ops"), so the running service validates it, switches to it atomically and its replicas
reload it. Exit status 0 when imported, 1 when refused (the reasons are printed, naming the
rows) or the service is unreachable.

    stores-import stores.csv [--url http://127.0.0.1:8106]
    OPS_INTERNAL_KEY=... stores-import stores.json --url http://stores.internal:8000
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import httpx

from servicekit.internal_keys import caller_headers


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Replace the store catalogue from a CSV or JSON file")
    parser.add_argument("file", type=Path)
    parser.add_argument("--url", default=os.environ.get("STORES_URL", "http://127.0.0.1:8106"))
    parser.add_argument("--timeout", type=float, default=120.0)
    args = parser.parse_args(argv)
    content = args.file.read_bytes()
    csv = args.file.suffix.lower() == ".csv"
    headers = {
        **caller_headers("ops", os.environ.get("OPS_INTERNAL_KEY") or None),
        "Content-Type": "text/csv" if csv else "application/json",
    }
    try:
        r = httpx.post(
            f"{args.url}/internal/v1/stores/catalogue",
            content=content,
            headers=headers,
            params={"source": args.file.name[:100]},
            timeout=args.timeout,
            trust_env=False,
        )
    except httpx.HTTPError as exc:
        print(f"stores service unreachable at {args.url}: {exc}", file=sys.stderr)
        return 1
    body = r.json() if r.headers.get("content-type", "").startswith("application/json") else {"text": r.text}
    if r.status_code != 200:
        print(f"import refused ({r.status_code}): {body.get('message', body)}", file=sys.stderr)
        for line in body.get("errors", [])[1:]:
            print(f"  {line}", file=sys.stderr)
        return 1
    print(json.dumps(body, ensure_ascii=False))
    return 0


def run() -> None:
    sys.exit(main())
