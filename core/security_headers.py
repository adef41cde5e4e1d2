"""The security headers every response carries, set in one place for the API and the pages.

Views may set their own value for a header (a page that loads Stripe.js widens
its Content-Security-Policy, a public document may be cached); what they leave
unset gets the strict default here.
"""

from __future__ import annotations

from flask import Flask, Response, current_app, request

#: Sent with every response: no MIME sniffing, no framing, no Referer (self-service
#: links carry a token in their path), no powerful browser features.
ALWAYS: dict[str, str] = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=()",
}
#: The default: nothing may load from a response or frame it. A page that needs scripts,
#: styles or Stripe's frames sets its own policy.
API_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
#: Paths whose answers may be stored by a cache: nothing in them is about a person.
CACHEABLE = ("/api/openapi.json", "/healthz")
HSTS = "max-age=31536000; includeSubDomains"


def set_security_headers(response: Response) -> Response:
    """Add the default security headers that ``response`` does not set itself."""
    headers = response.headers
    for name, value in ALWAYS.items():
        headers.setdefault(name, value)
    if not request.path.startswith(CACHEABLE):
        # Clinic data (health data above all) must never sit in a browser's or a proxy's
        # cache, where the next user of a shared front-desk computer could find it.
        headers.setdefault("Cache-Control", "no-store")
    headers.setdefault("Content-Security-Policy", API_CSP)
    if current_app.config.get("SESSION_COOKIE_SECURE"):
        headers.setdefault("Strict-Transport-Security", HSTS)
    return response


def init_app(app: Flask) -> None:
    """Install the headers on every response of ``app``, errors included."""
    app.after_request(set_security_headers)
