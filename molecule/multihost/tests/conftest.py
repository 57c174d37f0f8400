"""The hosts of the scenario, each as a testinfra host, and what the tests need to know of them."""

from __future__ import annotations

import pytest

from harness.scenario import pytest_collection_modifyitems, pytest_configure, scenario_host  # noqa: F401 (hooks)


@pytest.fixture(scope="session")
def lb():
    return scenario_host("uqcrowd-mh-lb")


@pytest.fixture(scope="session")
def app():
    return scenario_host("uqcrowd-mh-app")


@pytest.fixture(scope="session")
def data():
    return scenario_host("uqcrowd-mh-data")


# The Elasticsearch nodes (inventory/hosts.yml): name -> (HTTP port, transport port), all at the data
# host's address (the two extra nodes share its network).
ES_NODES = {"uqcrowd-mh-data": (9200, 9300), "uqcrowd-mh-es2": (9201, 9301), "uqcrowd-mh-es3": (9202, 9302)}


@pytest.fixture(scope="session")
def es_hosts(data) -> dict:
    """Each Elasticsearch node's host, by node name."""
    return {name: data if name == "uqcrowd-mh-data" else scenario_host(name) for name in ES_NODES}


def address(host) -> str:
    """The host's private address (the one the roles wire together)."""
    return host.ansible("ansible.builtin.setup", "filter=ansible_default_ipv4", check=False)["ansible_facts"][
        "ansible_default_ipv4"
    ]["address"]


@pytest.fixture(scope="session")
def addresses(lb, app, data) -> dict[str, str]:
    return {"lb": address(lb), "app": address(app), "data": address(data)}


@pytest.fixture
def elastic(data) -> tuple[str, str]:
    """The elastic user's credentials as the role keeps them now (the upgrade test sets a new password)."""
    return ("elastic", data.file("/etc/elasticsearch/elastic-password").content_string.strip())
