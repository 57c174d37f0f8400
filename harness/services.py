"""Real Redis, Elasticsearch and logger processes for the tests, each on a free loopback port."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path

import jinja2
import requests
import yaml
from elasticsearch import ApiError

ROOT = Path(__file__).resolve().parents[1]
LOGGER = ROOT / "files" / "logger.py"
ES_USER = "uqcrowd-test"  # Elasticsearch refuses to run as root; scripts/install-test-deps.sh creates it


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(check: Callable[[], bool], timeout: float, what: str, interval: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except (requests.RequestException, OSError):
            pass
        except ApiError as error:  # 503: an index created a moment ago, its shard not started yet
            if error.meta.status != 503:
                raise
        time.sleep(interval)
    raise TimeoutError(f"{what} not ready after {timeout:.0f} s")


class Process:
    """A child process with start/stop/kill; subclasses say how to run it and when it is ready."""

    def __init__(self, log: Path) -> None:
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        raise NotImplementedError

    def ready(self) -> bool:
        return True

    def popen_options(self) -> dict[str, object]:
        return {}

    def start(self, timeout: float = 30) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(self.command(), stdout=out, stderr=subprocess.STDOUT, **self.popen_options())
        wait_until(lambda: self._alive_or_fail() and self.ready(), timeout, f"{type(self).__name__} ({self.log})")

    def _alive_or_fail(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise RuntimeError(f"{self.command()[0]} exited {self.proc.returncode}: {self.log.read_text()[-2000:]}")
        return True

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def stop(self, timeout: float = 30) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()


class RedisServer(Process):
    def __init__(
        self, workdir: Path, password: str = "", options: tuple[str, ...] = (), data_dir: Path | None = None
    ) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        super().__init__(workdir / "redis.out")
        self.workdir, self.port, self.password = workdir, free_port(), password
        self.data_dir = data_dir or workdir  # the AOF's directory (a LazyFS mount in the power-cut tests)
        self.options = options  # more redis-server arguments, the last word (e.g. "--maxmemory", "32mb")

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def command(self) -> list[str]:
        cmd = [
            "redis-server",
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.data_dir),
            "--appendonly",
            "yes",
            "--appendfsync",
            "everysec",
            "--save",
            "",
            "--daemonize",
            "no",
        ]
        return cmd + (["--requirepass", self.password] if self.password else []) + list(self.options)

    def ready(self) -> bool:
        with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith((b"+PONG", b"-NOAUTH"))


class TlsRedisServer(RedisServer):
    """Redis on TLS only (no plain port), as the redis role runs it beyond loopback: `tls` holds the
    server's cert, key and the CA (harness/certificates.py); clients authenticate by password."""

    def __init__(self, workdir: Path, tls: Mapping[str, Path], password: str = "") -> None:
        super().__init__(workdir, password)
        self.tls = tls

    @property
    def url(self) -> str:
        return super().url.replace("redis://", "rediss://", 1)

    def command(self) -> list[str]:
        cmd = super().command()
        cmd[cmd.index("--port") + 1] = "0"
        return [
            *cmd,
            "--tls-port", str(self.port),
            "--tls-cert-file", str(self.tls["cert"]),
            "--tls-key-file", str(self.tls["key"]),
            "--tls-ca-cert-file", str(self.tls["ca"]),
            "--tls-auth-clients", "no",
        ]  # fmt: skip

    def ready(self) -> bool:
        context = ssl.create_default_context(cafile=str(self.tls["ca"]))
        context.check_hostname = False  # up or not; the names are the tests' business
        with (
            socket.create_connection(("127.0.0.1", self.port), timeout=1) as raw,
            context.wrap_socket(raw, server_hostname="127.0.0.1") as sock,
        ):
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith((b"+PONG", b"-NOAUTH"))


class SentinelServer(Process):
    """A Redis Sentinel watching the primary at `primary_port` as `service` (quorum 2 of three), with
    the short timeouts of a test: down after 1 s, a failover retried after 4 s."""

    def __init__(self, workdir: Path, primary_port: int, service: str = "uqcrowd", password: str = "") -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        super().__init__(workdir / f"sentinel-{self.port}.out")
        self.config = workdir / f"sentinel-{self.port}.conf"  # Sentinel rewrites it with what it learns
        lines = [
            f"port {self.port}",
            "bind 127.0.0.1",
            f"dir {workdir}",
            f"sentinel monitor {service} 127.0.0.1 {primary_port} 2",
            f"sentinel down-after-milliseconds {service} 1000",
            f"sentinel failover-timeout {service} 4000",
            *([f"sentinel auth-pass {service} {password}"] if password else []),
        ]
        self.config.write_text("\n".join(lines) + "\n")

    def command(self) -> list[str]:
        return ["redis-server", str(self.config), "--sentinel"]

    def ready(self) -> bool:
        with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")


class ElasticsearchServer(Process):
    """The official integ-test-zip, unpacked once, run with the host's Java 17 and a small heap."""

    def __init__(
        self, archive: Path, workdir: Path, max_content_length: str = "100mb", quick_start: bool = False
    ) -> None:
        super().__init__(workdir / "elasticsearch.out")
        # The quick compiler only: starts on half the CPU (tests restart it); the benchmark keeps the defaults.
        self.jvm_options = "-Xms512m -Xmx512m" + (" -XX:TieredStopAtLevel=1" if quick_start else "")
        self.port, self.transport_port = free_port(), free_port()
        self.max_content_length = max_content_length  # http.max_content_length (Elasticsearch's default)
        if not any(workdir.glob("elasticsearch-*")):
            with zipfile.ZipFile(archive) as zf:
                zf.extractall(workdir)
        self.home = next(workdir.glob("elasticsearch-*"))
        for tool in (self.home / "bin").iterdir():
            tool.chmod(0o755)
        if os.geteuid() == 0:
            subprocess.run(["chown", "-R", ES_USER, str(workdir)], check=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        return [
            str(self.home / "bin" / "elasticsearch"),
            "-E",
            f"http.port={self.port}",
            "-E",
            f"transport.port={self.transport_port}",
            "-E",
            "discovery.type=single-node",
            "-E",
            "network.host=127.0.0.1",
            "-E",
            "xpack.security.enabled=false",
            "-E",
            "cluster.routing.allocation.disk.threshold_enabled=false",
            "-E",
            f"http.max_content_length={self.max_content_length}",
        ]

    def popen_options(self) -> dict[str, object]:
        env = dict(os.environ, ES_JAVA_OPTS=self.jvm_options, ES_JAVA_HOME=java_home())
        return {"env": env, "user": ES_USER} if os.geteuid() == 0 else {"env": env}

    def ready(self) -> bool:
        return requests.get(f"{self.url}/_cluster/health", timeout=2).status_code == 200

    def start(self, timeout: float = 120) -> None:
        super().start(timeout)


class HaproxyServer(Process):
    """HAProxy in the foreground with the haproxy role's own template and defaults (`settings` overrides
    them), as the role writes it but for the host's paths: no chroot, its log on standard output."""

    def __init__(
        self,
        workdir: Path,
        ports: list[int],
        settings: Mapping[str, object] | None = None,
        without: tuple[str, ...] = (),
    ) -> None:
        """`without`: directives taken out of the rendered file (each line that starts with one), to
        measure what they cost."""
        workdir.mkdir(parents=True, exist_ok=True)
        self.port, self.stats = free_port(), free_port()
        super().__init__(workdir / f"haproxy-{self.port}.out")
        variables = {
            **yaml.safe_load((ROOT / "roles/haproxy/defaults/main.yml").read_text()),
            "haproxy_frontend_port": self.port,
            "haproxy_stats_port": self.stats,
            "haproxy_frontend_address": "127.0.0.1",
            "haproxy_backends": [{"host": "logger", "address": "127.0.0.1", "port": p} for p in ports],
            **(settings or {}),
        }
        loader = jinja2.FileSystemLoader(ROOT / "roles/haproxy/templates")
        template = jinja2.Environment(loader=loader, trim_blocks=True, keep_trailing_newline=True)  # as Ansible's
        text = template.get_template("haproxy.cfg.j2").render(**variables)
        text = text.replace("    chroot /var/lib/haproxy\n", "").replace("    daemon\n", "")
        text = text.replace("log /dev/log ", "log stdout format short ")
        text = text.replace("stats socket /run/haproxy/admin.sock", f"stats socket {workdir}/haproxy-{self.port}.sock")
        text = "".join(line for line in text.splitlines(keepends=True) if not line.strip().startswith(without))
        self.config = workdir / f"haproxy-{self.port}.cfg"
        self.config.write_text(text)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        return ["haproxy", "-db", "-f", str(self.config)]

    def ready(self) -> bool:
        """Its health checks have found every backend up (the stats page as CSV)."""
        csv = requests.get(f"http://127.0.0.1:{self.stats}/;csv", timeout=2).text
        rows = [line.split(",") for line in csv.splitlines()]
        servers = [row for row in rows if row[0] == "loggers" and row[1] not in ("FRONTEND", "BACKEND")]
        return bool(servers) and all(row[17] == "UP" for row in servers)

    def counter(self, name: str, proxy: str) -> float:
        """A Prometheus counter of the stats listener's exporter, summed over its other labels."""
        text = requests.get(f"http://127.0.0.1:{self.stats}/metrics", timeout=5).text
        prefix = f'{name}{{proxy="{proxy}"'
        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(prefix))


class LoggerProcess(Process):
    """`python -m uqcrowd_log PORT` (an HTTP backend) or `python -m uqcrowd_log indexer`: the installed package."""

    def __init__(self, workdir: Path, env: Mapping[str, str], what: str = "backend") -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port() if what == "backend" else 0
        super().__init__(workdir / f"{what}-{self.port or os.getpid()}-{time.monotonic_ns()}.out")
        self.what, self.env = what, dict(env)

    @property
    def url(self) -> str:
        return f"{'https' if self.env.get('UQCROWD_TLS_CERT') else 'http'}://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        return [sys.executable, "-m", "uqcrowd_log", str(self.port) if self.what == "backend" else "indexer"]

    def popen_options(self) -> dict[str, object]:
        return {"env": {**os.environ, **self.env}}

    def ready(self) -> bool:
        if self.what != "backend":  # the indexer logs "started" once its signal handlers are in place
            return " started: " in self.log.read_text(errors="replace")
        if self.env.get("UQCROWD_TLS_CERT"):  # HTTPS: verified with the ca.crt beside it (certificates.py)
            with socket.create_connection(("127.0.0.1", self.port), 2) as raw:
                ssl.create_default_context(cafile=Path(self.env["UQCROWD_TLS_CERT"]).with_name("ca.crt")).wrap_socket(
                    raw, server_hostname="localhost"
                ).close()
            return True
        return requests.get(f"{self.url}/logger/health", timeout=2).status_code == 200


def java_home() -> str:
    if os.environ.get("ES_JAVA_HOME"):
        return os.environ["ES_JAVA_HOME"]
    java = Path(shutil.which("java") or "/usr/bin/java").resolve()
    return str(java.parent.parent)
