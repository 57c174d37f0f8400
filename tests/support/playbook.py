"""site.yml run again by a Molecule test, on the scenario's own inventory."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SITE = ROOT / "site.yml"


def converge(tags: str = "", **extra: str) -> None:
    """Run site.yml (only `tags`' plays if given) with extra variables.

    Fails on an error or on any generated secret in Ansible's -v output."""
    command = ["ansible-playbook", "-i", os.environ["MOLECULE_INVENTORY_FILE"], str(SITE), "-v"]
    if tags:
        command += ["--tags", tags]
    for key, value in extra.items():
        command += ["-e", f"{key}={value}"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=1200, check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    secrets = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "inventory" / ".secrets"
    for secret in secrets.iterdir():
        assert secret.read_text().strip() not in result.stdout + result.stderr, secret.name


def run_alone(playbook: str, limit: str = "") -> str:
    """Run one playbook of playbooks/ (with --limit if given) on the scenario's inventory; its output.

    Fails on an error, and on any change: it runs on a converged deployment."""
    command = ["ansible-playbook", "-i", os.environ["MOLECULE_INVENTORY_FILE"], str(ROOT / "playbooks" / playbook)]
    if limit:
        command += ["--limit", limit]
    result = subprocess.run(command, capture_output=True, text=True, timeout=1200, check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    recap = result.stdout[result.stdout.index("PLAY RECAP") :]
    assert " changed=0 " in recap, recap
    assert all(" changed=0 " in line for line in recap.splitlines() if " ok=" in line), recap
    return result.stdout
