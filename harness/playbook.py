"""site.yml (or one playbook) run again by a Molecule test, on the scenario's own inventory."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def attempt(playbook: str, *args: str) -> subprocess.CompletedProcess[str]:
    """ansible-playbook ROOT/playbook on the scenario's inventory, -v; whatever its outcome."""
    inventory = Path(os.environ["MOLECULE_INVENTORY_FILE"]).parent  # the file, and the scenario's hosts and vars
    command = ["ansible-playbook", "-i", str(inventory), str(ROOT / playbook), "-v", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=1500, check=False)


def run(playbook: str, *args: str) -> str:
    """ansible-playbook ROOT/playbook on the scenario's inventory; its output. Fails on an error, and
    on any generated secret in the output (-v prints every task's result)."""
    result = attempt(playbook, *args)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    secrets = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "inventory" / ".secrets"
    for secret in secrets.iterdir() if secrets.is_dir() else []:
        assert secret.read_text().strip() not in result.stdout + result.stderr, secret.name
    return result.stdout


def converge(tags: str = "", **extra: str) -> str:
    """Run site.yml (only `tags`' plays if given) with extra variables; its output."""
    args = ["--tags", tags] if tags else []
    for key, value in extra.items():
        args += ["-e", f"{key}={value}"]
    return run("site.yml", *args)


def run_unchanged(playbook: str, *args: str) -> str:
    """Run a playbook (site.yml or playbooks/NAME.yml, with e.g. --limit or --check) on a converged
    deployment; its output. Fails on any change."""
    output = run(playbook, *args)
    recap = output[output.index("PLAY RECAP") :]
    task = r"^(?:TASK|RUNNING HANDLER) \[(.*?)\].*\n"
    changed = re.findall(task + r"(?:(?!TASK \[|RUNNING HANDLER \[).*\n)*?changed: \[(.*?)\]", output, re.M)
    if all(" changed=0 " in line for line in recap.splitlines() if " ok=" in line):
        return output
    block = r"^(?:TASK|RUNNING HANDLER) \[.*?(?=^TASK \[|^RUNNING HANDLER \[|^PLAY RECAP)"
    blocks = re.findall(block, output, re.M | re.S)
    shown = "".join(block[:1500] for block in blocks if "changed: [" in block)  # with --diff: what would change
    raise AssertionError(f"{changed}\n{shown}\n{recap[:1500]}")


def service_release(dest: Path, version: str) -> Path:
    """A copy of the repository's files/ (the service) under `dest`, its version string changed: a new
    release for roles/logger (`-e logger_source_dir=...`)."""
    copy = dest / f"files-{version}"
    shutil.copytree(ROOT / "files", copy, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    init = copy / "uqcrowd_log" / "__init__.py"
    init.write_text(re.sub(r'__version__ = "[^"]+"', f'__version__ = "{version}"', init.read_text()))
    return copy
