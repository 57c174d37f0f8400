"""A throw-away CA and a server certificate signed by it, made with openssl, for TLS tests."""

from __future__ import annotations

import subprocess
from pathlib import Path


def make_ca_and_server(directory: Path, common_name: str, alt_names: str) -> dict[str, Path]:
    """ca.crt, server.crt and server.key in `directory`; alt_names as openssl's subjectAltName
    (e.g. "IP:127.0.0.1,DNS:localhost")."""
    directory.mkdir(parents=True, exist_ok=True)
    files = {name: directory / name for name in ("ca.crt", "ca.key", "server.crt", "server.key", "server.csr")}

    def openssl(*args: str | Path) -> None:
        subprocess.run(["openssl", *map(str, args)], check=True, capture_output=True)

    openssl(
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=uqcrowd test CA",
        "-keyout", files["ca.key"], "-out", files["ca.crt"],
    )  # fmt: skip
    openssl(
        "req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={common_name}",
        "-keyout", files["server.key"], "-out", files["server.csr"],
    )  # fmt: skip
    extensions = directory / "server.ext"
    extensions.write_text(f"subjectAltName={alt_names}\n")
    openssl(
        "x509", "-req", "-in", files["server.csr"], "-CA", files["ca.crt"], "-CAkey", files["ca.key"],
        "-CAcreateserial", "-days", "2", "-extfile", extensions, "-out", files["server.crt"],
    )  # fmt: skip
    return {"ca": files["ca.crt"], "cert": files["server.crt"], "key": files["server.key"]}
