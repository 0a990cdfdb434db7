"""HTTP plumbing shared by capture's routes: reading bodies, CORS, content negotiation, HTML pages."""

from __future__ import annotations

import html
import ipaddress
from collections.abc import Iterable

from fastapi import Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from leadflow_capture import bodies, domain
from leadflow_capture.ratelimit import SubmissionLimiter
from leadflow_kit.bodies import BodyRefused
from leadflow_kit.errors import FieldError, problem_response

ALLOWED_REQUEST_HEADERS = "Content-Type, Accept, Idempotency-Key, X-Correlation-Id, X-Requested-With"
EXPOSED_HEADERS = "Retry-After, X-Correlation-Id, Idempotency-Replayed, Location"
PREFLIGHT_MAX_AGE = "600"
STORAGE_RETRY_AFTER = "5"


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(entries: Iterable[str]) -> tuple[Network, ...]:
    """``10.0.0.0/8``, ``192.0.2.7`` or ``2001:db8::/32``; raises ValueError on anything else."""
    return tuple(ipaddress.ip_network(entry.strip(), strict=False) for entry in entries)


def _trusted(address: str, proxies: tuple[Network, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in proxies)


def client_address(peer: str | None, forwarded_for: Iterable[str], proxies: tuple[Network, ...]) -> str | None:
    """The address a rate limit counts: the peer, unless the peer is a trusted proxy; then the
    rightmost X-Forwarded-For entry that is not a trusted proxy. Each proxy appends the address it
    saw, so entries left of that one are whatever the client chose to send and never count."""
    if peer is None or not _trusted(peer, proxies):
        return peer
    hops = [hop.strip() for header in forwarded_for for hop in header.split(",") if hop.strip()]
    for hop in reversed(hops):
        if not _trusted(hop, proxies):
            return hop[:64]
    # Only proxies all the way: the farthest one is the nearest thing to a client.
    return hops[0][:64] if hops else peer


def storage_unavailable(wants_html: bool, headers: dict[str, str] | None = None) -> Response:
    return error_response(
        wants_html, 503, "submissions cannot be stored right now; retry shortly",
        [FieldError(field="body", code="storage_unavailable", message="the database is unreachable")],
        {**(headers or {}), "Retry-After": STORAGE_RETRY_AFTER},
    )


async def read_body(request: Request) -> bytes:
    """The body, within the route's limit and nesting bound (``leadflow_kit.bodies`` counts as it streams)."""
    chunks = bytearray()
    try:
        async for chunk in request.stream():
            chunks.extend(chunk)
    except BodyRefused as exc:
        raise bodies.BadBody(exc.status_code, exc.code, exc.message) from None
    return bytes(chunks)


def prefers_html(accept: str, media_type: str, requested_with: str | None = None) -> bool:
    """A browser's own form post (no script) wants a page back; a fetch or API client wants JSON.

    Scripts say so with a JSON Accept header or X-Requested-With (as jQuery and many form libraries do).
    """
    accept = accept.lower()
    if "application/json" in accept or requested_with:
        return False
    if "text/html" in accept:
        return True
    return media_type in bodies.FORM_TYPES


def wants_html(request: Request, media_type: str) -> bool:
    return prefers_html(request.headers.get("accept", ""), media_type, request.headers.get("x-requested-with"))


def cors_headers(origin: str | None, allowed: Iterable[str]) -> dict[str, str]:
    if not origin or not domain.origin_allowed(allowed, origin):
        return {"Vary": "Origin"} if origin else {}
    return {
        "Access-Control-Allow-Origin": origin,
        "Access-Control-Expose-Headers": EXPOSED_HEADERS,
        "Vary": "Origin",
    }


def preflight_headers(origin: str) -> dict[str, str]:
    return {
        "Access-Control-Allow-Origin": origin,
        "Access-Control-Allow-Methods": "POST, OPTIONS",
        "Access-Control-Allow-Headers": ALLOWED_REQUEST_HEADERS,
        "Access-Control-Max-Age": PREFLIGHT_MAX_AGE,
        "Vary": "Origin",
    }


def page_load_throttled(limiter: SubmissionLimiter, ip: str | None) -> Response | None:
    """A 429 for an address over its page-load budget (embed.js, CORS preflights), else None."""
    retry_after = limiter.check(ip, None)
    return too_many_requests(retry_after) if retry_after else None


def too_many_requests(retry_after: int, headers: dict[str, str] | None = None) -> JSONResponse:
    return json_error(429, f"too many requests; retry after {retry_after} seconds",
                      [FieldError(field="body", code="rate_limited", message="rate limit reached")],
                      headers={**(headers or {}), "Retry-After": str(retry_after)})


def json_error(status: int, detail: str, errors: list[FieldError] | None = None,
               headers: dict[str, str] | None = None) -> JSONResponse:
    return problem_response(status, detail, errors or [], headers)


def page(title: str, body_html: str, status: int = 200, headers: dict[str, str] | None = None) -> HTMLResponse:
    document = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>{html.escape(title)}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:36rem;margin:4rem auto;padding:0 1rem;color:#1f2933}}
li{{margin:.3rem 0}}</style></head>
<body><h1>{html.escape(title)}</h1>{body_html}</body></html>"""
    return HTMLResponse(document, status_code=status, headers=headers)


def error_page(status: int, detail: str, errors: list[FieldError] | None = None,
               headers: dict[str, str] | None = None) -> HTMLResponse:
    items = "".join(f"<li><strong>{html.escape(e.field)}</strong>: {html.escape(e.message)}</li>"
                    for e in errors or [])
    body = f"<p>{html.escape(detail)}</p>" + (f"<ul>{items}</ul>" if items else "")
    body += '<p><a href="javascript:history.back()">Go back and try again</a></p>'
    return page("We could not take your submission", body, status, headers)


def error_response(wants_html: bool, status: int, detail: str, errors: list[FieldError] | None = None,
                   headers: dict[str, str] | None = None) -> Response:
    if wants_html:
        return error_page(status, detail, errors, headers)
    return json_error(status, detail, errors, headers)


def response_body_text(response: Response) -> str:
    body = response.body
    return bytes(body).decode() if body else ""

