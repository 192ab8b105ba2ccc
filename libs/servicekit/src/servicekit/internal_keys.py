"""Who may call a service's /internal routes, and the keys of the local profile.

Each caller (a service, the operators' tools, campaign tools, content-provider partners)
presents its own key with its name, so one leaked key speaks for one caller only, and each
route accepts only the callers that need it. Production keys come from the environment
(a Kubernetes Secret); the local profile derives a public, laptop-only key per caller.
"""

from __future__ import annotations

KNOWN_CALLERS = (
    "account-service",
    "payment-service",
    "vas-service",
    "loyalty-service",
    "notify-service",
    "stores-service",
    "ops",  # operators' command-line tools and back office
    "campaign-tools",  # campaign teams publishing promotions
    "content-provider",  # VAS content providers and partner web pages (through their gateway)
)


def local_key(caller: str) -> str:
    return f"local-internal-key-{caller}"


def local_keys() -> dict[str, str]:
    return {caller: local_key(caller) for caller in KNOWN_CALLERS}


def caller_headers(caller: str, key: str | None = None) -> dict[str, str]:
    """Headers of a call to another service's /internal route as `caller`."""
    return {"X-Internal-Caller": caller, "X-Internal-Key": key if key is not None else local_key(caller)}
