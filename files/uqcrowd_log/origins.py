"""Which page sent a request: the browser's `Origin` header against UQCROWD_ALLOWED_ORIGINS.

A browser names the page's origin on every POST and a page's script cannot change it, so an allow-list
keeps other sites' pages (and copies of a task page elsewhere) from writing into a study. Anything that
is not a browser can send any header: this is not authentication (README, "Facing the internet").
"""

from __future__ import annotations

from collections.abc import Collection


def origin_allowed(origin: str, allowed: Collection[str]) -> bool:
    """True when `allowed` holds "*" or exactly this origin ("null", a sandboxed page's, only if listed)."""
    return "*" in allowed or origin in allowed
