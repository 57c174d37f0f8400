"""Who may see the dashboard: researchers listed with a password hash (werkzeug's, e.g. scrypt), checked
on every request by HTTP Basic authentication. A wrong or missing login gets 401 and nothing else."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from werkzeug.datastructures import Authorization
from werkzeug.security import check_password_hash, generate_password_hash

# Checked when the user is unknown, so that an unknown name costs the same time as a wrong password.
_NOBODY = generate_password_hash("not a password of anyone")


class UsersFileError(ValueError):
    """The users file cannot be used (its line and why)."""


def read_users(path: Path) -> dict[str, str]:
    """`name:hash` per line (blank lines and # comments skipped), as written by the logger role."""
    users: dict[str, str] = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, password_hash = line.partition(":")
        if not sep or not name or "$" not in password_hash:
            raise UsersFileError(f"{path}:{number}: expected name:password-hash (werkzeug's format)")
        users[name] = password_hash
    return users


def allowed(users: Mapping[str, str], login: Authorization | None) -> bool:
    """True when the Basic login names a listed user with the right password."""
    if login is None or login.type != "basic" or not login.username or login.password is None:
        return False
    known = users.get(login.username)
    matches = check_password_hash(known or _NOBODY, login.password)
    return known is not None and matches
