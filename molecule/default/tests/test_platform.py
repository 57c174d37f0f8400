"""Each role stops at its first task, in one line, on a system it is not made for."""

from __future__ import annotations

import re

import pytest

from tests.support.playbook import attempt

ROLES = ["elasticsearch", "redis", "logger", "haproxy", "monitoring"]


def test_the_stack_runs_on_a_release_the_roles_support(host):
    assert host.system_info.distribution == "debian"
    assert host.system_info.release.split(".")[0] in ("12", "13")


@pytest.mark.parametrize("role", ROLES)
def test_a_role_refuses_another_system_at_its_first_task_in_one_line(role):
    # The release the role sees, as if the host were Ubuntu 24.04 (the facts themselves cannot be faked).
    result = attempt(f"playbooks/{role}.yml", "--check", "-e", f"_{role}_platform=Ubuntu-24")
    assert result.returncode != 0
    # The failed task is the last one the run started (the only host failed); Molecule's settings print
    # its result on stderr (display_failed_stderr), a plain run on stdout.
    task = re.findall(r"^TASK \[(\w+) : (.*?)\]", result.stdout, re.M)[-1]
    assert task == (role, "Refuse a system this role is not made for")
    fatal = re.search(r'^fatal: \[.*?\]: FAILED! => .*?"msg": "(.*?)"', result.stdout + result.stderr, re.M)
    assert fatal, result.stdout[-2000:] + result.stderr[-2000:]
    message = fatal.group(1)
    assert message.startswith(f"roles/{role} installs ")
    assert "on Debian 12 or 13, not on Debian 1" in message
    assert "\\n" not in message
    assert "changed: " not in result.stdout  # nothing was done before it
