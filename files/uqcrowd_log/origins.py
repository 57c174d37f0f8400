"""Which page sent a request: the browser's `Origin` header against UQCROWD_ALLOWED_ORIGINS.

A browser names the page's origin on every POST and a page's script cannot change it, so an allow-list
keeps other sites' pages (and copies of a task page elsewhere) from writing into a study. Anything that
is not a browser can send any header: this is not authentication (docs/operators/facing-the-internet.md).
"""

from __future__ import annotations

from collections.abc import Collection

from werkzeug.wrappers import Response


def origin_allowed(origin: str, allowed: Collection[str]) -> bool:
    """True when `allowed` holds "*" or exactly this origin ("null", a sandboxed page's, only if listed)."""
    return "*" in allowed or origin in allowed


def allow_origin(response: Response, origin: str | None, allowed: Collection[str]) -> None:
    """The CORS header a page of an allowed origin needs to read the answer ("*" when any may)."""
    if "*" in allowed:
        response.headers["Access-Control-Allow-Origin"] = "*"
    elif origin is not None and origin_allowed(origin, allowed):
        response.headers["Access-Control-Allow-Origin"] = origin
        response.vary.add("Origin")
