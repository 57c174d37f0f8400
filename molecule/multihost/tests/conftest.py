"""The three hosts of the scenario, each as a testinfra host, and what the tests need to know of them."""

from __future__ import annotations

import os

import pytest
import testinfra


def _host(name: str):
    return testinfra.get_host(f"ansible://{name}", ansible_inventory=os.environ["MOLECULE_INVENTORY_FILE"])


@pytest.fixture(scope="session")
def lb():
    return _host("uqcrowd-mh-lb")


@pytest.fixture(scope="session")
def app():
    return _host("uqcrowd-mh-app")


@pytest.fixture(scope="session")
def data():
    return _host("uqcrowd-mh-data")


def address(host) -> str:
    """The host's private address (the one the roles wire together)."""
    return host.ansible("ansible.builtin.setup", "filter=ansible_default_ipv4", check=False)["ansible_facts"][
        "ansible_default_ipv4"
    ]["address"]


@pytest.fixture(scope="session")
def addresses(lb, app, data) -> dict[str, str]:
    return {"lb": address(lb), "app": address(app), "data": address(data)}


@pytest.fixture(scope="session")
def elastic(data) -> tuple[str, str]:
    return ("elastic", data.file("/etc/elasticsearch/elastic-password").content_string.strip())
