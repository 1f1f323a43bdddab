"""The operator's `adledger` command line, run as an operator runs it: the console script that
`make venv` installed, in a subprocess, with the stack's settings in its environment."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ADLEDGER = Path(sys.executable).parent / "adledger"


@dataclass(frozen=True)
class CliResult:
    arguments: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        try:
            return json.loads(self.stdout)
        except ValueError as error:
            raise AssertionError(f"adledger {' '.join(self.arguments)} printed no JSON: {self}") from error

    def __str__(self) -> str:
        return f"exit {self.returncode}\nstdout:\n{self.stdout[-4000:]}\nstderr:\n{self.stderr[-4000:]}"


async def adledger(*arguments: str, timeout_s: float = 120.0, **environment: str) -> CliResult:
    """Run `adledger ARGUMENTS...`; the stack's addresses come from the environment the session
    fixture set (ADLEDGER_KAFKA_BOOTSTRAP_SERVERS, ADLEDGER_DATABASE_URL)."""
    assert ADLEDGER.is_file(), f"{ADLEDGER} is missing: `make venv` installs the adledger console script"
    completed = await asyncio.to_thread(
        subprocess.run,
        [str(ADLEDGER), *arguments],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        env={**os.environ, **environment},
    )
    return CliResult(tuple(arguments), completed.returncode, completed.stdout, completed.stderr)
