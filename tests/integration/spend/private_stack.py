"""A private Kafka + PostgreSQL for tests that restart them, started by the project's own
`deploy/local/stack` with another ADLEDGER_HOME, other ports and another PostgreSQL cluster name,
so the shared stack that other tests run on is never touched.

The Kafka jars are not fetched again: the private home links to the shared home's jar cache, and the
private broker runs the pinned version (deploy/kafka.lock).
Start-up failures raise (the test fails loudly, it is never skipped); `destroy()` SIGKILLs both and
deletes the private data and cluster, and refuses to act on anything that looks like the shared stack.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
STACK = ROOT / "deploy" / "local" / "stack"
SHARED_HOME = Path(os.environ.get("ADLEDGER_HOME") or Path.home() / ".cache" / "adledger")


def _free_ports(count: int) -> list[int]:
    """Ports free right now, distinct, away from the shared stack's."""
    sockets, ports = [], []
    try:
        while len(ports) < count:
            probe = socket.socket()
            probe.bind(("127.0.0.1", 0))
            sockets.append(probe)
            port = int(probe.getsockname()[1])
            if port not in (15432, 19092, 19093):
                ports.append(port)
    finally:
        for probe in sockets:
            probe.close()
    return ports


class PrivateStack:
    def __init__(self) -> None:
        self.home = Path(tempfile.mkdtemp(prefix="adledger-private-"))
        self.kafka_port, self.controller_port, self.pg_port = _free_ports(3)
        self.cluster = f"adl_private_{uuid.uuid4().hex[:8]}"
        self.env = {
            **{name: value for name, value in os.environ.items() if not name.startswith("ADLEDGER_")},
            "ADLEDGER_HOME": str(self.home),
            "ADLEDGER_KAFKA_PORT": str(self.kafka_port),
            "ADLEDGER_KAFKA_CONTROLLER_PORT": str(self.controller_port),
            "ADLEDGER_PG_PORT": str(self.pg_port),
            "ADLEDGER_PG_CLUSTER": self.cluster,
            "ADLEDGER_KAFKA_HEAP_OPTS": "-Xms256m -Xmx512m",
            "ADLEDGER_STACK_TIMEOUT": "120",
        }
        # The private broker runs the pinned Kafka (deploy/kafka.lock), or the caller's ADLEDGER_KAFKA_VERSION,
        # from the shared jar cache; a version not cached yet is fetched into it once, verified.
        shared_jars = SHARED_HOME / "kafka"
        if shared_jars.is_dir():
            (self.home / "kafka").symlink_to(shared_jars, target_is_directory=True)
        if os.environ.get("ADLEDGER_KAFKA_VERSION"):
            self.env["ADLEDGER_KAFKA_VERSION"] = os.environ["ADLEDGER_KAFKA_VERSION"]

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.kafka_port}"

    @property
    def database_url(self) -> str:
        return f"postgresql://adledger:adledger@127.0.0.1:{self.pg_port}/adledger"

    def stack(self, *arguments: str, timeout_s: float = 240) -> str:
        """Run `deploy/local/stack` on the private stack; raise with its output when it fails."""
        done = subprocess.run([str(STACK), *arguments], check=False, env=self.env, capture_output=True, text=True, timeout=timeout_s)
        output = done.stdout + done.stderr
        if done.returncode != 0:
            raise RuntimeError(f"deploy/local/stack {' '.join(arguments)} failed on the private stack ({self.home}):\n{output[-4000:]}")
        return output

    def start(self) -> None:
        self.stack("start")

    def restart_kafka(self) -> None:
        self.stack("restart", "kafka")

    def stop_postgres(self) -> None:
        self.stack("stop", "postgres")

    def start_postgres(self) -> None:
        self.stack("start", "postgres")

    def destroy(self) -> None:
        assert self.home != SHARED_HOME and self.cluster != "adledger", "never the shared stack"
        assert self.kafka_port != 19092 and self.pg_port != 15432, "never the shared stack"
        try:
            self.stack("kill")
            self.stack("reset")
        finally:
            shutil.rmtree(self.home, ignore_errors=True)
