"""Headless Chromium driven by selenium, as the tracker's tests use it."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service


def chromium(profile: Path, *flags: str, trusted_cas: tuple[Path, ...] = ()) -> webdriver.Chrome:
    """A headless Chromium with its own profile under `profile`. `trusted_cas`: root certificates it trusts
    as the system's (in an NSS database of its own HOME, as Chromium on Linux reads them; certutil)."""
    binary, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (binary and driver):
        pytest.fail("chromium and chromedriver are missing: run scripts/install-test-deps.sh")
    env = dict(os.environ)
    if trusted_cas:
        nssdb = profile / "home" / ".pki" / "nssdb"
        nssdb.mkdir(parents=True, exist_ok=True)
        subprocess.run(["certutil", "-N", "--empty-password", "-d", f"sql:{nssdb}"], check=True)
        for number, ca in enumerate(trusted_cas):
            add = ["certutil", "-A", "-t", "C,,", "-n", f"ca{number}", "-i", str(ca), "-d", f"sql:{nssdb}"]
            subprocess.run(add, check=True)
        env["HOME"] = str(profile / "home")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile / 'profile'}",
        *flags,
    ):
        options.add_argument(flag)
    return webdriver.Chrome(options=options, service=Service(executable_path=driver, env=env))
