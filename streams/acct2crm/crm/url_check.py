"""Whether a CRM URL may carry the bearer token: https anywhere, http only on loopback."""

from __future__ import annotations

import ipaddress

import httpx

from acct2crm.errors import ConfigError


def check_crm_url(url: str, *, allow_insecure_http: bool = False) -> None:
    """Refuse a CRM URL that would carry the bearer token in clear over a network.

    ``http`` is accepted for loopback hosts (the local stack) and, only when
    the operator says so (setting ``crm_allow_insecure_http``), for others,
    e.g. a private container network.
    """
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise ConfigError(f"crm_url {url!r} is not a URL: {exc}") from exc
    if parsed.scheme == "https":
        return
    if parsed.scheme != "http" or not parsed.host:
        raise ConfigError(f"crm_url must be an http(s) URL with a host, not {url!r}")
    if _is_loopback(parsed.host) or allow_insecure_http:
        return
    raise ConfigError(
        f"crm_url {url} is plain http to a host other than this machine: the CRM token "
        "would travel in clear. Use https, or set crm_allow_insecure_http = true "
        "(ACCT2CRM_CRM_ALLOW_INSECURE_HTTP=true) if that network is private."
    )


def _is_loopback(host: str) -> bool:
    name = host.strip("[]").rstrip(".").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False
