"""Security headers on every response: a strict Content-Security-Policy and the usual hardening headers."""

from __future__ import annotations

# A strict policy: no inline script or style, nothing from another origin. Framing is allowed for Hugging Face Spaces,
# which show the app in an iframe.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; connect-src 'self'; "
       "font-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; "
       "frame-ancestors 'self' https://huggingface.co https://*.huggingface.co https://*.hf.space")


def security_headers(response):
    response.headers.setdefault("Content-Security-Policy", CSP)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "no-referrer")
    response.headers.setdefault("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
    return response
