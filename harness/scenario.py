"""For a Molecule scenario's conftest.py: the scenario's hosts (its inventory) as testinfra hosts, and
the order its tests run in: those marked `leaves_changes` (a failover, a new release) last. A conftest
takes the two hooks by importing them (`from harness.scenario import pytest_configure, ...`)."""

from __future__ import annotations

import os
from typing import Any

import pytest
import testinfra


def scenario_host(name: str) -> Any:
    """One host of the scenario, by its inventory name (the scenario's group_vars and host_vars with it)."""
    inventory = os.path.dirname(os.environ["MOLECULE_INVENTORY_FILE"])
    return testinfra.get_host(f"ansible://{name}", ansible_inventory=inventory)


def scenario_hosts(*names: str) -> dict[str, Any]:
    """Several, by name, in the order given."""
    return {name: scenario_host(name) for name in names}


def hosts_and_first(*names: str) -> tuple[Any, Any]:
    """The fixtures `hosts` (every host named) and `host` (the first), for a scenario of several hosts
    whose single-host tests run on the first: `hosts, host = hosts_and_first("a", "b")` in conftest.py."""

    @pytest.fixture(scope="session")
    def hosts() -> dict[str, Any]:
        return scenario_hosts(*names)

    @pytest.fixture(scope="session")
    def host(hosts: dict[str, Any]) -> Any:
        return hosts[names[0]]

    return hosts, host


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "leaves_changes: changes the deployment for good, so it runs last")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests that leave the deployment changed run after every other (a stable sort keeps the rest in order)."""
    items.sort(key=lambda item: item.get_closest_marker("leaves_changes") is not None)
