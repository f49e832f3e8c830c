"""For tests that start servers (the browser tests, torchrun, Dask): Chromium's path, free ports,
server processes stopped whatever happens."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path

CHROMIUM = Path("/usr/bin/chromium")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def answers(url: str | None, port: int | None) -> bool:
    """Whether `url` returns 200 (or, without a url, whether `port` accepts connections)."""
    try:
        if url is None:
            with socket.create_connection(("127.0.0.1", port), timeout=2):
                return True
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status == 200
    except (urllib.error.URLError, OSError):
        return False


@contextmanager
def server(cmd, *, url=None, port=None, env: dict, log: Path, timeout: float = 60):
    """Start a server in its own process group, wait until it answers, always stop it."""
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            cmd,
            env={**os.environ, **env},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + timeout
            while not answers(url, port):
                if proc.poll() is not None:
                    raise RuntimeError(
                        f"{' '.join(cmd[:4])} exited with {proc.returncode}; log {log}"
                    )
                if time.monotonic() > deadline:
                    where = url or f"port {port}"
                    raise TimeoutError(f"{where} did not answer within {timeout:.0f} s; log {log}")
                time.sleep(0.5)
            yield proc
        finally:
            stop(proc)


def stop(proc: subprocess.Popen) -> None:
    """SIGTERM the process group, SIGKILL it after 10 s."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
    except ProcessLookupError:
        pass
