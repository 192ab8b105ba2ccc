#!/usr/bin/env python3
"""Renders the gateway's nginx config from nginx.conf.tmpl and routes.tsv (stdlib only).

Usage: render.py OUT_DIR   (normally through render.sh, which supplies env.sh's defaults)

Writes OUT_DIR/nginx.conf, OUT_DIR/gateway.js (njs, beside nginx.conf) and
OUT_DIR/gateway-key.conf (mode 0600: the gateway keys are secrets, so they stay out of
nginx.conf). Every input comes from the environment and is validated: a typo in a CIDR list
must fail the render, not silently trust the internet.

Required: GATEWAY_PORT, GATEWAY_RUN_DIR (pid file; temp dirs in its temp/) and, for each
service in SERVICES, GATEWAY_KEY_<NAME> (the key the gateway sends that service only, in
X-Gateway-Key: a service that leaks its key cannot speak as the gateway to another one; every
key different) and <NAME>_PORT (unless GATEWAY_UPSTREAM_TEMPLATE is set).
Optional (default):
  SERVICES ("account payment")          services that are deployed; the others answer 503
  GATEWAY_LISTEN_ADDR (127.0.0.1)       "" listens on every address
  GATEWAY_UPSTREAM_HOST (127.0.0.1)     where the services listen
  GATEWAY_UPSTREAM_TEMPLATE ("")        e.g. "{name}:8000" (docker-compose); overrides the two above
  CARRIER_PROXY_CIDRS ("")              carrier header-enrichment proxies (comma/space separated)
  RATE_LIMIT_EXEMPT_CIDRS ("")          sources never rate limited
  GATEWAY_RATE/GATEWAY_BURST (20/40), GATEWAY_AUTH_RATE/GATEWAY_AUTH_BURST (5/10),
  GATEWAY_WEBHOOK_RATE/GATEWAY_WEBHOOK_BURST (500/1000) requests per second per client: the
      payment provider retries what we refuse, so a tight limit only delays money (a 2000-payment
      burst at 50/s left credits waiting up to 47 s); it exists to stop floods, not peaks
  GATEWAY_BODY_LIMIT (64k), GATEWAY_CONNECT_TIMEOUT (3s), GATEWAY_READ_TIMEOUT (30s),
  GATEWAY_UPSTREAM_KEEPALIVE_TIMEOUT (60s, below the services' 75 s), GATEWAY_WORKERS (auto),
  GATEWAY_WORKER_CONNECTIONS (4096)
  LOGS (.)                               directory of gateway-access.log and gateway-error.log
  GATEWAY_ACCESS_LOG / GATEWAY_ERROR_LOG  override those paths (e.g. /dev/stdout in a container)
  GATEWAY_USER ("")                      emit `user NAME;` (only meaningful when started as root)
  GATEWAY_STATUS_PORT ("")               stub_status on 127.0.0.1:PORT/nginx_status
  GATEWAY_FORWARDED_PROTO ($scheme)      X-Forwarded-Proto sent upstream
  GATEWAY_KEY_INCLUDE (gateway-key.conf) path nginx.conf includes for the key
  GATEWAY_TEMP_DIR ($GATEWAY_RUN_DIR/temp) parent of nginx's temp dirs (must exist)
  GATEWAY_NJS_MODULE (/usr/lib/nginx/modules/ngx_http_js_module.so, Debian's libnginx-mod-http-js;
      the official nginx images: /etc/nginx/modules/ngx_http_js_module.so)
  GATEWAY_ZERO_RATED_PORT, GATEWAY_ZERO_RATED_HOST ("", "")  both or neither: a second listener
      answering only that Host and only the app's routes (routes.tsv audience "app"), for the
      traffic the carrier does not charge (docs/zero-rating.md)
"""

from __future__ import annotations

import ipaddress
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
TEMPLATE = HERE / "nginx.conf.tmpl"
ROUTES = HERE / "routes.tsv"
NJS = HERE / "gateway.js"

KNOWN_SERVICES = ("account", "vas", "payment", "loyalty", "notify", "stores")
MATCHES = {"exact": "=", "prefix": "^~", "regex": "~"}
ZONES = ("api", "auth", "webhook")
AUDIENCES = ("app", "partner")
HOSTNAME = r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)+"


class RenderError(Exception):
    pass


@dataclass(frozen=True)
class Route:
    match: str
    path: str
    service: str
    zone: str
    audience: str


def parse_routes(text: str) -> list[Route]:
    routes: list[Route] = []
    seen: set[tuple[str, str]] = set()
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        fields = line.split()
        if len(fields) != 5:
            expected = "match path service limit audience"
            raise RenderError(f"routes.tsv:{number}: expected '{expected}', got {raw!r}")
        match, path, service, zone, audience = fields
        if match not in MATCHES:
            raise RenderError(f"routes.tsv:{number}: match must be one of {sorted(MATCHES)}")
        if service not in KNOWN_SERVICES:
            raise RenderError(f"routes.tsv:{number}: unknown service {service!r}")
        if zone not in ZONES:
            raise RenderError(f"routes.tsv:{number}: limit must be one of {ZONES}")
        if audience not in AUDIENCES:
            raise RenderError(f"routes.tsv:{number}: audience must be one of {AUDIENCES}")
        if match == "regex":
            if not (path.startswith("^/api/") and path.endswith("$")):
                raise RenderError(f"routes.tsv:{number}: a regex route must be anchored ^/api/...$")
            re.compile(path)
        elif not path.startswith("/api/") or not re.fullmatch(r"[A-Za-z0-9/_.-]+", path):
            raise RenderError(f"routes.tsv:{number}: a path must start with /api/ and be plain")
        if (match, path) in seen:
            raise RenderError(f"routes.tsv:{number}: duplicate route {match} {path}")
        seen.add((match, path))
        routes.append(Route(match, path, service, zone, audience))
    return routes


def split_list(value: str) -> list[str]:
    return [item for item in re.split(r"[\s,]+", value.strip()) if item]


def parse_cidrs(name: str, value: str) -> list[str]:
    cidrs = []
    for item in split_list(value):
        try:
            net = ipaddress.ip_network(item, strict=True)
        except ValueError as exc:
            raise RenderError(f"{name}: {item!r} is not a network address/prefix ({exc})") from None
        if net.prefixlen == 0:
            raise RenderError(f"{name}: {item} would match every address")
        cidrs.append(str(net))
    return cidrs


def env(name: str, default: str | None = None) -> str:
    value = os.environ.get(name)
    if value is None or (value == "" and default is not None):
        if default is None:
            raise RenderError(f"{name} is not set")
        return default
    return value


def checked(name: str, value: str, pattern: str, what: str) -> str:
    if not re.fullmatch(pattern, value):
        raise RenderError(f"{name}={value!r}: expected {what}")
    return value


def setting(name: str, default: str, pattern: str, what: str) -> str:
    return checked(name, env(name, default), pattern, what)


def rate(name: str, default: str) -> str:
    value = setting(name, default, r"[1-9][0-9]*(r/[sm])?", "requests per second, e.g. 20 or 20r/s")
    return value if "/" in value else f"{value}r/s"


def port(name: str, default: str | None = None) -> int:
    value = int(checked(name, env(name, default), r"[0-9]{1,5}", "a TCP port"))
    if not 0 < value < 65536:
        raise RenderError(f"{name}={value}: not a TCP port")
    return value


def upstream_block(service: str, address: str, keepalive_timeout: str) -> str:
    return (
        f"    upstream gw_{service} {{\n"
        f"        server {address};\n"
        f"        keepalive 32;\n"
        f"        keepalive_requests 1000;\n"
        f"        keepalive_timeout {keepalive_timeout};\n"
        f"    }}"
    )


def route_block(route: Route, deployed: bool, bursts: dict[str, str]) -> str:
    lines = [
        f"        location {MATCHES[route.match]} {route.path} {{",
        f"            set $gw_service {route.service};",
    ]
    if route.audience != "app":
        lines += ["            if ($gw_zero_rated) {", "                return 404;", "            }"]
    if deployed:
        lines.append(f"            limit_req zone=gw_{route.zone} burst={bursts[route.zone]} nodelay;")
        lines.append(f"            proxy_pass http://gw_{route.service};")
    else:
        lines.append("            return 503;")
    lines.append("        }")
    return "\n".join(lines)


def status_server(status_port: int | None) -> str:
    if status_port is None:
        return ""
    return (
        "    # nginx's connection counters for the Prometheus exporter (local address only).\n"
        "    server {\n"
        f"        listen 127.0.0.1:{status_port};\n"
        "        access_log off;\n"
        "        location = /nginx_status {\n"
        "            stub_status;\n"
        "        }\n"
        "        location / {\n"
        "            return 404;\n"
        "        }\n"
        "    }"
    )


def zero_rated(listen_addr: str, gateway_port: int) -> dict[str, str]:
    """The zero-rated listener's pieces of the template (all empty when it is off)."""
    host = setting("GATEWAY_ZERO_RATED_HOST", "", f"|{HOSTNAME}", "a lower-case host name")
    zr_port = port("GATEWAY_ZERO_RATED_PORT") if env("GATEWAY_ZERO_RATED_PORT", "") else None
    if bool(host) != bool(zr_port):
        raise RenderError("GATEWAY_ZERO_RATED_PORT and GATEWAY_ZERO_RATED_HOST go together")
    if zr_port == gateway_port:
        raise RenderError("GATEWAY_ZERO_RATED_PORT must differ from GATEWAY_PORT (the carrier sees only it)")
    if zr_port is None:
        return {"ZERO_RATED_LISTEN": "", "ZERO_RATED_PORT_MAP": "", "ZERO_RATED_HOST_MAP": ""}
    listen = f"{listen_addr}:{zr_port}" if listen_addr else str(zr_port)
    return {
        "ZERO_RATED_LISTEN": f"        listen {listen};  # zero-rated: {host} and the app's routes only",
        "ZERO_RATED_PORT_MAP": f"        {zr_port} 1;",
        "ZERO_RATED_HOST_MAP": f'        "1:{host}" 0;',
    }


def gateway_keys(deployed: list[str]) -> str:
    """gateway-key.conf: the key each service gets in X-Gateway-Key ($gw_service is set by the
    route's location); any other request sends an empty key."""
    keys: dict[str, str] = {}
    for name in deployed:
        variable = f"GATEWAY_KEY_{name.upper()}"
        key = checked(
            variable, env(variable), r"[A-Za-z0-9._~+/=-]{8,256}", "8-256 characters of [A-Za-z0-9._~+/=-]"
        )
        for other, other_key in keys.items():
            if key == other_key:
                raise RenderError(
                    f"{variable} is GATEWAY_KEY_{other.upper()}'s key: each service needs its own"
                )
        keys[name] = key
    lines = [f'    {name} "{key}";' for name, key in keys.items()]
    return (
        "# The key each service requires in X-Gateway-Key (secrets: keep this file private).\n"
        "map $gw_service $gw_gateway_key {\n"
        '    default "";\n' + "".join(line + "\n" for line in lines) + "}\n"
    )


def render(routes_text: str, template: str) -> tuple[str, str]:
    """Returns (nginx.conf, gateway-key.conf) for the current environment."""
    services = split_list(env("SERVICES", "account payment"))
    for name in services:
        if name not in KNOWN_SERVICES:
            raise RenderError(f"SERVICES: unknown service {name!r} (known: {' '.join(KNOWN_SERVICES)})")
    deployed = [name for name in KNOWN_SERVICES if name in services]

    key_conf = gateway_keys(deployed)

    duration, number = r"[1-9][0-9]*(ms|s|m)?", r"[0-9]{1,6}"
    keepalive_timeout = setting("GATEWAY_UPSTREAM_KEEPALIVE_TIMEOUT", "60s", duration, "a duration")
    template_addr = env("GATEWAY_UPSTREAM_TEMPLATE", "")
    upstream_host = env("GATEWAY_UPSTREAM_HOST", "127.0.0.1")
    upstreams = []
    for name in deployed:
        if template_addr:
            address = template_addr.format(name=name)
        else:
            address = f"{upstream_host}:{port(f'{name.upper()}_PORT')}"
        checked("upstream address", address, r"[A-Za-z0-9.\-\[\]:]+:[0-9]{1,5}", "host:port")
        upstreams.append(upstream_block(name, address, keepalive_timeout))

    bursts = {
        "api": setting("GATEWAY_BURST", "40", number, "a number"),
        "auth": setting("GATEWAY_AUTH_BURST", "10", number, "a number"),
        "webhook": setting("GATEWAY_WEBHOOK_BURST", "1000", number, "a number"),
    }
    routes = parse_routes(routes_text)
    route_text = "\n".join(route_block(r, r.service in deployed, bursts) for r in routes)

    run_dir = env("GATEWAY_RUN_DIR").rstrip("/") or "/"
    logs = env("LOGS", ".").rstrip("/")
    listen_addr = os.environ.get("GATEWAY_LISTEN_ADDR", "127.0.0.1")
    if listen_addr:
        checked("GATEWAY_LISTEN_ADDR", listen_addr, r"[0-9.]+|\[[0-9a-fA-F:]+\]", "an IPv4 address or [IPv6]")
    gateway_port = port("GATEWAY_PORT")
    status_port = port("GATEWAY_STATUS_PORT") if env("GATEWAY_STATUS_PORT", "") else None
    user = setting(
        "GATEWAY_USER", "", r"|[A-Za-z0-9_][A-Za-z0-9_.-]*( [A-Za-z0-9_][A-Za-z0-9_.-]*)?", "user [group]"
    )
    carriers = parse_cidrs("CARRIER_PROXY_CIDRS", env("CARRIER_PROXY_CIDRS", ""))
    exempt = parse_cidrs("RATE_LIMIT_EXEMPT_CIDRS", env("RATE_LIMIT_EXEMPT_CIDRS", ""))

    values = {
        "USER_DIRECTIVE": f"user {user};" if user else "",
        "WORKER_PROCESSES": setting("GATEWAY_WORKERS", "auto", r"auto|[1-9][0-9]?", "auto or N"),
        "WORKER_CONNECTIONS": setting("GATEWAY_WORKER_CONNECTIONS", "4096", r"[1-9][0-9]{1,5}", "a number"),
        "PID_FILE": f"{run_dir}/nginx.pid",
        "TEMP_DIR": env("GATEWAY_TEMP_DIR", f"{run_dir}/temp").rstrip("/"),
        "ERROR_LOG": env("GATEWAY_ERROR_LOG", f"{logs}/gateway-error.log"),
        "ACCESS_LOG": env("GATEWAY_ACCESS_LOG", f"{logs}/gateway-access.log"),
        "KEY_INCLUDE": env("GATEWAY_KEY_INCLUDE", "gateway-key.conf"),
        "NJS_MODULE": env("GATEWAY_NJS_MODULE", "/usr/lib/nginx/modules/ngx_http_js_module.so"),
        "LISTEN": f"{listen_addr}:{gateway_port}" if listen_addr else str(gateway_port),
        "CARRIER_GEO": "\n".join(f"        {cidr} 1;" for cidr in carriers),
        "EXEMPT_GEO": "\n".join(f"        {cidr} 1;" for cidr in exempt),
        "RATE": rate("GATEWAY_RATE", "20"),
        "BURST": bursts["api"],
        "AUTH_RATE": rate("GATEWAY_AUTH_RATE", "5"),
        "WEBHOOK_RATE": rate("GATEWAY_WEBHOOK_RATE", "500"),
        "BODY_LIMIT": setting("GATEWAY_BODY_LIMIT", "64k", r"[1-9][0-9]*[kKmM]?", "a size, e.g. 64k"),
        "CONNECT_TIMEOUT": setting("GATEWAY_CONNECT_TIMEOUT", "3s", duration, "a duration"),
        "READ_TIMEOUT": setting("GATEWAY_READ_TIMEOUT", "30s", duration, "a duration"),
        "FORWARDED_PROTO": setting(
            "GATEWAY_FORWARDED_PROTO", "$scheme", r"https?|\$[a-z_]+", "http(s) or $var"
        ),
        "UPSTREAMS": "\n".join(upstreams),
        "ROUTES": route_text,
        "STATUS_SERVER": status_server(status_port),
        **zero_rated(listen_addr, gateway_port),
    }
    for name in ("PID_FILE", "TEMP_DIR", "ERROR_LOG", "ACCESS_LOG", "KEY_INCLUDE", "NJS_MODULE"):
        checked(name, values[name], r"[A-Za-z0-9_./:@+-]+", "a path without spaces or quotes")

    def substitute(match: re.Match[str]) -> str:
        return values[match.group(1)]

    conf = re.sub(r"@([A-Z_]+)@", substitute, template)
    return conf, key_conf


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    out = Path(argv[1])
    try:
        conf, key_conf = render(ROUTES.read_text(), TEMPLATE.read_text())
    except RenderError as exc:
        print(f"render.py: {exc}", file=sys.stderr)
        return 1
    out.mkdir(parents=True, exist_ok=True)
    key_path = out / "gateway-key.conf"
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(key_conf)
    os.chmod(key_path, 0o600)
    (out / "gateway.js").write_text(NJS.read_text())
    (out / "nginx.conf").write_text(conf)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
