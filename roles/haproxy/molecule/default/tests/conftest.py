"""The scenario's two lb hosts, each as a testinfra host; the tests of one HAProxy use the first."""

from __future__ import annotations

from harness.scenario import hosts_and_first

hosts, host = hosts_and_first("uqcrowd-haproxy", "uqcrowd-haproxy-2")
