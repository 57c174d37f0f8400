"""The queue's Lua scripts as Redis receives them: a shared function included where a script names
it, the shebang (with its flags) still on the first line."""

from __future__ import annotations

from importlib.resources import files

import pytest

from uqcrowd_log.queue import scripts

SCRIPTS = sorted(p.name.removesuffix(".lua") for p in (files("uqcrowd_log.queue") / "lua").iterdir())


def test_every_script_is_shipped_with_the_package():
    assert {"enqueue", "settle", "quarantine", "purge_worker", "count", "append_bounded"} <= set(SCRIPTS)


@pytest.mark.parametrize("name", [n for n in SCRIPTS if n != "append_bounded"])
def test_a_script_starts_with_its_shebang_and_includes_what_it_names(name):
    source = scripts.source(name)
    assert source.splitlines()[0].startswith("#!lua")
    assert scripts.INCLUDE not in source
    uses = "append_bounded(" in source
    assert uses == ("local function append_bounded" in source)


def test_the_scripts_that_free_memory_run_at_maxmemory():
    for name in ("settle", "purge_worker", "count"):
        assert scripts.source(name).startswith("#!lua flags=allow-oom\n")
    assert scripts.source("enqueue").startswith("#!lua\n")  # an insert is refused at maxmemory
