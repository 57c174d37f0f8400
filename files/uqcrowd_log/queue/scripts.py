"""The queue's Lua scripts (lua/*.lua), each registered with a client by name.

A line `--#include <name>` in a script stands for the file lua/<name>.lua (a shared function); the
script's first line may be a `#!lua` shebang with its flags (e.g. allow-oom), which stays first.
"""

from __future__ import annotations

from functools import cache
from importlib.resources import files

import redis
from redis.commands.core import Script

INCLUDE = "--#include "


@cache
def source(name: str) -> str:
    text = (files(__package__) / "lua" / f"{name}.lua").read_text(encoding="utf-8")
    lines = [
        source(line.removeprefix(INCLUDE).strip()) if line.startswith(INCLUDE) else line for line in text.splitlines()
    ]
    return "\n".join(lines) + "\n"


def load(client: redis.Redis, name: str) -> Script:
    """The script lua/<name>.lua, run with EVALSHA (loaded into Redis on first use)."""
    return client.register_script(source(name))
