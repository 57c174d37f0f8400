"""Each role stops at its first task, in one line, on a system it is not made for."""

from __future__ import annotations

import re

import pytest

from harness.playbook import attempt

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


def test_the_memory_budget_sized_this_4_gb_host_and_refuses_a_heap_that_cannot_fit(host):
    """The container is limited to 4 GB (molecule.yml): measured from its cgroup, shared out by the
    budget (docs/operators/sizing.md#memory-budget); a heap of 3 GB beside the rest is refused before anything runs."""
    assert "-Xmx1053m" in host.file("/etc/elasticsearch/jvm.options.d/heap.options").content_string
    result = attempt("site.yml", "--check", "-e", "uqcrowd_elasticsearch_heap_size=3g")
    assert result.returncode != 0
    fatal = re.search(r'^fatal: \[.*?\]: FAILED! => .*?"msg": "(.*?)"', result.stdout + result.stderr, re.M)
    assert fatal, result.stdout[-2000:] + result.stderr[-2000:]
    assert fatal.group(1).startswith("uqcrowd-stack has 4096 MB and its components need 6347 MB (system 512, ")
    assert "HAProxy 320, Elasticsearch heap 3072, Redis maxmemory 526" in fatal.group(1)
    assert "TASK [elasticsearch :" not in result.stdout  # refused before any role ran
