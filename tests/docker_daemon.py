"""A real ``dockerd`` (Debian's docker.io) of the tests' own, and a busybox image for it.

The daemon gets its own data root, exec root (where it starts its own containerd) and
socket under a temporary directory, no bridge and no iptables rules, so it touches no
network of the machine; it is stopped at the end. No registry is reachable: the image is
imported from a root filesystem holding Debian's busybox-static and its applet links.
"""

from __future__ import annotations

import ctypes
import io
import os
import shutil
import signal
import subprocess
import tarfile
import tempfile
import time
from pathlib import Path

__all__ = ["IMAGE", "DockerDaemon", "DockerUnavailable"]

IMAGE = "sysstream-test/busybox:1"
READY_TIMEOUT = 30.0
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
APPLETS = ("sh", "yes", "sleep", "dd", "cat", "head", "true", "false", "mkdir", "ls")


class DockerUnavailable(RuntimeError):
    """This machine cannot run a Docker daemon; the message says why."""


class DockerDaemon:
    def __init__(self) -> None:
        missing = [name for name in ("dockerd", "docker") if shutil.which(name) is None]
        if missing or not os.path.exists("/bin/busybox"):
            raise DockerUnavailable(
                "expected dockerd, docker and /bin/busybox (apt-get install docker.io"
                f" busybox-static); missing: {', '.join(missing) or '/bin/busybox'}"
            )
        if os.geteuid() != 0:
            raise DockerUnavailable("dockerd needs root; the tests run as an unprivileged user")
        # Short: a Unix socket path must stay under 108 bytes.
        self.root = Path(tempfile.mkdtemp(prefix="ssd-"))
        self.socket = self.root / "docker.sock"
        self.host = f"unix://{self.socket}"
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = self.root / "dockerd.log"

    def start(self) -> None:
        args = [
            "dockerd",
            "--bridge=none",
            "--iptables=false",
            "--ip6tables=false",
            f"--data-root={self.root}/data",
            f"--exec-root={self.root}/exec",
            f"--pidfile={self.root}/dockerd.pid",
            f"--host={self.host}",
        ]
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                args,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent,  # only a prctl call
            )
        deadline = time.monotonic() + READY_TIMEOUT
        while self.run("version", check=False).returncode != 0:
            if self.process.poll() is not None or time.monotonic() > deadline:
                tail = self.log_path.read_text(errors="replace").strip().splitlines()[-3:]
                self.stop()
                raise DockerUnavailable(f"dockerd did not start: {' | '.join(tail)}")
            time.sleep(0.2)
        self.run("import", "-", IMAGE, input=busybox_rootfs())

    def run(
        self, *args: str, check: bool = True, input: bytes | None = None, timeout: float = 60
    ) -> subprocess.CompletedProcess[bytes]:
        env = {**os.environ, "DOCKER_HOST": self.host}
        return subprocess.run(
            ["docker", *args], env=env, input=input, capture_output=True, check=check,
            timeout=timeout,
        )  # fmt: skip

    def output(self, *args: str) -> str:
        return self.run(*args).stdout.decode().strip()

    def remove_all(self) -> None:
        ids = self.output("ps", "-aq").split()
        if ids:
            self.run("rm", "-f", *ids)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.remove_all()
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        shutil.rmtree(self.root, ignore_errors=True)


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM when the test process dies, so a pytest killed by
    a timeout (no fixture teardown) leaves no dockerd behind."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def busybox_rootfs() -> bytes:
    """A tar of / holding /bin/busybox and links for the applets the tests run."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        tar.add("/bin/busybox", arcname="bin/busybox")
        for name in APPLETS:
            link = tarfile.TarInfo(f"bin/{name}")
            link.type = tarfile.SYMTYPE
            link.linkname = "busybox"
            tar.addfile(link)
        for directory in ("tmp", "proc", "sys", "dev", "etc"):
            entry = tarfile.TarInfo(directory)
            entry.type = tarfile.DIRTYPE
            entry.mode = 0o1777 if directory == "tmp" else 0o755
            tar.addfile(entry)
    return buffer.getvalue()
