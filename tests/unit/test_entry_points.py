"""The service's commands, as the installed package declares them and as the original ran them."""

import subprocess
import sys
from pathlib import Path

import pytest

import uqcrowd_log

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
RUNNERS = {
    "uqcrowd-logger (the package's command)": [str(BIN / "uqcrowd-logger")],
    "python logger.py (the original's usage)": [sys.executable, str(ROOT / "files" / "logger.py")],
    "python -m uqcrowd_log": [sys.executable, "-m", "uqcrowd_log"],
}


@pytest.mark.parametrize("runner", RUNNERS.values(), ids=RUNNERS.keys())
@pytest.mark.parametrize("port_arg", ["0", "70000", "abc"])
def test_a_bad_port_is_refused_in_one_line(runner, port_arg):
    result = subprocess.run([*runner, port_arg], capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    refusal = f"{port_arg!r} is neither a port (1-65535) nor 'indexer' nor 'dashboard'"
    assert result.stderr.splitlines()[-1].endswith(refusal)


def test_the_package_has_one_version():
    from importlib.metadata import version

    assert version("uqcrowd-log") == uqcrowd_log.__version__
    result = subprocess.run([str(BIN / "uqcrowd-log"), "--help"], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert "withdraw" in result.stdout
