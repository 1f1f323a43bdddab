"""The Python tools of deploy/k8s (generate.py, render.py), loaded by path for the tests: deploy/ holds
scripts, not packages, and the pinned Kafka version is read in one place, deploy/k8s/generate.py."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]
_loaded: dict[str, ModuleType] = {}


def load(name: str) -> ModuleType:
    """deploy/k8s/<name>.py as a module (loaded once)."""
    if name not in _loaded:
        spec = importlib.util.spec_from_file_location(f"adledger_deploy_{name}", ROOT / "deploy" / "k8s" / f"{name}.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        _loaded[name] = module
    return _loaded[name]


def pinned_kafka_version() -> str:
    """The one Kafka version of the project (deploy/kafka.lock)."""
    return str(load("generate").kafka_version())
