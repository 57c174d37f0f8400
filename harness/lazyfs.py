"""A filesystem that forgets what was not synced, for power-cut tests (after Jepsen's LazyFS).

`python -m harness.lazyfs BACKING MOUNTPOINT` mounts BACKING at MOUNTPOINT (FUSE, in the
foreground). Data written to a file stays in this process's memory, as in a page cache, until the file
is fsync'ed or fdatasync'ed; only then does it reach BACKING. Creating `MOUNTPOINT/.power-cut` is the
power cut: every write not synced yet is thrown away, as a host crash loses its page cache. Names
(create, rename, unlink, mkdir) go to BACKING at once, as a journalling filesystem keeps its metadata.

`LazyFS` in the tests starts and stops it and cuts the power.
"""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

POWER_CUT = "/.power-cut"


class _Forgetful:
    """The FUSE operations (mfusepy's high-level API): a passthrough with unsynced writes in memory."""

    def __init__(self, backing: str) -> None:
        self.backing = backing
        self.pending: dict[str, list[tuple[int, bytes]]] = {}  # path -> unsynced writes, in order
        self._mutex = threading.Lock()
        self.power_cuts = 0

    def _real(self, path: str) -> str:
        return os.path.join(self.backing, path.lstrip("/"))

    def _end(self, path: str) -> int:
        return max((offset + len(data) for offset, data in self.pending.get(path, [])), default=0)

    # ---- names and attributes: straight to the backing directory
    def getattr(self, path: str, fh: int | None = None) -> dict[str, Any]:
        if path == POWER_CUT:
            raise OSError(errno.ENOENT, "")
        st = os.lstat(self._real(path))
        attrs = {key: getattr(st, key) for key in ("st_mode", "st_nlink", "st_uid", "st_gid", "st_atime", "st_mtime")}
        with self._mutex:
            attrs["st_size"] = max(st.st_size, self._end(path))
        attrs["st_ctime"] = st.st_ctime
        return attrs

    def readdir(self, path: str, fh: int) -> list[str]:
        return [".", "..", *os.listdir(self._real(path))]

    def mkdir(self, path: str, mode: int) -> None:
        os.mkdir(self._real(path), mode)

    def rmdir(self, path: str) -> None:
        os.rmdir(self._real(path))

    def unlink(self, path: str) -> None:
        os.unlink(self._real(path))
        with self._mutex:
            self.pending.pop(path, None)

    def rename(self, old: str, new: str) -> None:
        os.rename(self._real(old), self._real(new))
        with self._mutex:
            self.pending.pop(new, None)
            if old in self.pending:
                self.pending[new] = self.pending.pop(old)

    def chmod(self, path: str, mode: int) -> None:
        os.chmod(self._real(path), mode)

    def chown(self, path: str, uid: int, gid: int) -> None:
        os.chown(self._real(path), uid, gid)

    def utimens(self, path: str, times: tuple[float, float] | None = None) -> None:
        os.utime(self._real(path), times)

    def statfs(self, path: str) -> dict[str, int]:
        st = os.statvfs(self._real(path))
        keys = ("f_bsize", "f_frsize", "f_blocks", "f_bfree", "f_bavail", "f_namemax")
        return {key: getattr(st, key) for key in keys}

    # ---- files
    def create(self, path: str, mode: int, fi: Any = None) -> int:
        if path == POWER_CUT:
            with self._mutex:
                self.pending.clear()
                self.power_cuts += 1
            raise OSError(errno.EPERM, "power cut done")  # nothing is created
        fd = os.open(self._real(path), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        os.close(fd)
        with self._mutex:
            self.pending.pop(path, None)
        return 0

    def open(self, path: str, flags: int) -> int:
        if not os.path.exists(self._real(path)):
            raise OSError(errno.ENOENT, "")
        return 0

    def read(self, path: str, size: int, offset: int, fh: int) -> bytes:
        with open(self._real(path), "rb") as f:
            f.seek(offset)
            data = bytearray(f.read(size))
        with self._mutex:
            writes = list(self.pending.get(path, []))
        end = offset + size
        for start, chunk in writes:  # the unsynced writes over what is on disk, in order
            lo, hi = max(start, offset), min(start + len(chunk), end)
            if lo >= hi:
                continue
            if len(data) < hi - offset:
                data.extend(b"\0" * (hi - offset - len(data)))
            data[lo - offset : hi - offset] = chunk[lo - start : hi - start]
        return bytes(data)

    def write(self, path: str, data: bytes, offset: int, fh: int) -> int:
        with self._mutex:
            self.pending.setdefault(path, []).append((offset, bytes(data)))
        return len(data)

    def truncate(self, path: str, length: int, fh: int | None = None) -> None:
        self._sync(path)  # simplification: a truncation is durable at once, with what came before it
        os.truncate(self._real(path), length)

    def fsync(self, path: str, datasync: int, fh: int) -> None:
        self._sync(path)

    def fsyncdir(self, path: str, datasync: int, fh: int) -> None:
        return None

    def flush(self, path: str, fh: int) -> None:
        return None  # closing a file syncs nothing

    def release(self, path: str, fh: int) -> None:
        return None

    def _sync(self, path: str) -> None:
        with self._mutex:
            writes = self.pending.pop(path, [])
        if not writes:
            return
        fd = os.open(self._real(path), os.O_WRONLY)
        try:
            for offset, chunk in writes:
                os.pwrite(fd, chunk, offset)
            os.fsync(fd)
        finally:
            os.close(fd)


class LazyFS:
    """The filesystem above, mounted by a child process: start(), power_cut(), stop()."""

    def __init__(self, backing: Path, mountpoint: Path, log: Path) -> None:
        self.backing, self.mountpoint, self.log = backing, mountpoint, log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 20) -> None:
        self.backing.mkdir(parents=True, exist_ok=True)
        self.mountpoint.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, "-m", "harness.lazyfs", str(self.backing), str(self.mountpoint)]
        root = Path(__file__).resolve().parents[1]
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, cwd=root)
        deadline = time.monotonic() + timeout
        while not os.path.ismount(self.mountpoint):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"lazyfs did not mount: {self.log.read_text()[-2000:]}")
            time.sleep(0.1)

    def power_cut(self) -> None:
        """Throw away every write not synced yet."""
        try:
            (self.mountpoint / POWER_CUT.lstrip("/")).touch()
        except PermissionError:  # the filesystem's answer once the cut is done
            return
        raise RuntimeError("lazyfs did not cut the power")

    def stop(self) -> None:
        subprocess.run(["fusermount3", "-u", "-z", str(self.mountpoint)], check=False, capture_output=True)
        if self.proc is not None:
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def main() -> None:
    import mfusepy

    backing, mountpoint = sys.argv[1], sys.argv[2]
    options = {"attr_timeout": 0, "entry_timeout": 0, "negative_timeout": 0, "direct_io": True}
    mfusepy.FUSE(_Forgetful(os.path.abspath(backing)), mountpoint, foreground=True, nothreads=True, **options)


if __name__ == "__main__":
    main()
