"""Child processes of the launcher.

Each child runs in its own session (Ctrl-C reaches the launcher only, which
then stops the children in order) and, through ``setpriv --pdeathsig``, gets
SIGTERM if the launcher dies, so nothing outlives it. ``setpriv`` also drops
to the ``postgres`` user for the servers that refuse to run as root; it execs
the server, so the pid we hold is the server's.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

SETPRIV = shutil.which("setpriv")
# What the servers create (logs, data, sockets) is their user's only.
PRIVATE = 0o077


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def free_ports(count: int) -> list[int]:
    """``count`` distinct free ports (all held open while they are picked)."""
    with contextlib.ExitStack() as held:
        ports = []
        for _ in range(count):
            sock = held.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sock.bind(("127.0.0.1", 0))
            ports.append(sock.getsockname()[1])
        return ports


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def wait_until(
    check: Callable[[], bool],
    *,
    timeout_s: float,
    what: str,
    alive: Callable[[], bool] = lambda: True,
) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if not alive():
            raise RuntimeError(f"{what}: the process exited while starting")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not ready after {timeout_s:.0f}s")
        time.sleep(0.1)


def system_user(name: str) -> pwd.struct_passwd | None:
    """The user to run a server as when we are root and it refuses root."""
    if os.geteuid() != 0:
        return None
    return pwd.getpwnam(name)


def _wrapped(argv: Sequence[str], user: pwd.struct_passwd | None) -> list[str]:
    if SETPRIV is None:
        if user is not None:
            raise FileNotFoundError("setpriv (util-linux) is needed to run servers as postgres")
        return list(argv)
    prefix = [SETPRIV, "--pdeathsig", "TERM"]
    if user is not None:
        prefix += ["--reuid", str(user.pw_uid), "--regid", str(user.pw_gid), "--init-groups"]
    return [*prefix, "--", *argv]


def _wait_unreaped(pid: int, timeout_s: float) -> bool:
    """Waits for ``pid`` to exit without reaping it; False on timeout."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            info = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return True  # already reaped
        if info is not None:
            return True
        time.sleep(0.05)
    return False


def private_log(path: Path) -> BinaryIO:
    """``path`` opened for appending, created readable by this user only."""
    return os.fdopen(os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600), "ab")


def run_once(
    argv: Sequence[str],
    *,
    user: pwd.struct_passwd | None = None,
    env: Mapping[str, str] | None = None,
    log: Path,
) -> None:
    with private_log(log) as out:
        result = subprocess.run(
            _wrapped(argv, user),
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            check=False,
            cwd="/",
            umask=PRIVATE,
        )
    if result.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-10:])
        raise RuntimeError(f"{argv[0]} failed ({result.returncode}); {log} ends:\n{tail}")


@dataclass
class Child:
    """A long-running server process with its log file."""

    name: str
    argv: Sequence[str]
    log: Path
    env: Mapping[str, str] | None = None
    user: pwd.struct_passwd | None = None
    stop_signal: signal.Signals = signal.SIGTERM
    cwd: str | None = None
    # The TCP port it serves on, to tell when it is up (again); for our own
    # services, the gRPC address whose health check says so.
    port: int | None = None
    health_address: str | None = None
    # Where one of our services serves its Prometheus metrics.
    metrics_port: int | None = None
    process: subprocess.Popen[bytes] | None = field(default=None, init=False)

    def start(self) -> None:
        out = private_log(self.log)
        try:
            self.process = subprocess.Popen(
                _wrapped(self.argv, self.user),
                stdout=out,
                stderr=subprocess.STDOUT,
                env=self.env,
                cwd=self.cwd,
                start_new_session=True,
                umask=PRIVATE,
            )
        finally:
            out.close()

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def alive(self) -> bool:
        """Running? Checked without reaping, so ``stop`` can still clean up
        the process group of a child that died."""
        if self.process is None or self.process.returncode is not None:
            return False
        try:
            exited = os.waitid(os.P_PID, self.process.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return False
        return exited is None

    def request_stop(self) -> None:
        """Sends the stop signal without waiting (``stop`` then waits), so
        several processes can shut down at once."""
        if self.process is not None and self.alive():
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(self.stop_signal)

    def stop(self, timeout_s: float = 20.0) -> int | None:
        """Asks the process to stop, waits, and kills it if it does not; then
        kills whatever is left of its process group (e.g. forked workers).

        The group is killed while the exited leader is not reaped yet, so its
        id cannot have been reused by an unrelated process group."""
        if self.process is None:
            return None
        process = self.process
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(self.stop_signal)
            if not _wait_unreaped(process.pid, timeout_s):
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                _wait_unreaped(process.pid, timeout_s)
            # The child leads its own session and process group (start_new_session).
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        return process.returncode

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""
