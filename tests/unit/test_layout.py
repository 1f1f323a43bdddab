"""The monorepo's shape: the services with one skeleton, services that never import each other,
and a pure domain layer in each."""

import ast
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ("identity", "wallet", "campaign", "invoicing", "order_escrow", "spend_consumer", "sends")
SKELETON = ("domain/__init__.py", "ports/__init__.py", "adapters/__init__.py", "inject.py", "main.py", "config.py", "__main__.py")
IO_LIBRARIES = {"aiokafka", "asyncpg", "faust", "starlette", "fastapi", "uvicorn", "httpx"}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


@pytest.mark.parametrize("service", SERVICES)
def test_every_service_has_the_same_skeleton_and_a_console_script(service: str) -> None:
    package = ROOT / "services" / service / f"adledger_{service}"
    for part in SKELETON:
        assert (package / part).is_file(), f"{service} lacks {part}"
    project = tomllib.loads((ROOT / "services" / service / "pyproject.toml").read_text())
    scripts = project["project"]["scripts"]
    assert scripts == {f"adledger-{service.replace('_', '-')}": f"adledger_{service}.main:main"}


@pytest.mark.parametrize("service", SERVICES)
def test_services_never_import_each_other_and_their_domain_does_no_io(service: str) -> None:
    package = ROOT / "services" / service / f"adledger_{service}"
    others = {f"adledger_{other}" for other in SERVICES if other != service}
    for path in package.rglob("*.py"):
        imported = _imports(path)
        assert not imported & others, f"{path} imports another service: {imported & others}"
        if "domain" in path.relative_to(package).parts:
            assert not imported & IO_LIBRARIES, f"{path} does I/O in the domain: {imported & IO_LIBRARIES}"


def test_libs_hold_nothing_service_specific() -> None:
    for path in (ROOT / "libs").rglob("*.py"):
        imported = _imports(path)
        assert not any(name.startswith("adledger_") and name not in {"adledger_libs", "adledger_contracts", "adledger_ledger", "adledger_auth"} for name in imported), path


def test_the_ad_server_client_stands_alone_on_aiokafka_and_pydantic() -> None:
    # Ad servers install adledger-client without the platform's libraries (issue 17).
    package = ROOT / "clients" / "python" / "adledger_client"
    allowed = {"adledger_client", "aiokafka", "pydantic", "__future__", *sys.stdlib_module_names}
    for path in package.rglob("*.py"):
        imported = _imports(path)
        assert imported <= allowed, f"{path} imports {imported - allowed}"
    project = tomllib.loads((ROOT / "clients" / "python" / "pyproject.toml").read_text())
    assert sorted(requirement.split(">")[0].split("<")[0] for requirement in project["project"]["dependencies"]) == ["aiokafka", "pydantic"]
    assert (package / "py.typed").is_file()
