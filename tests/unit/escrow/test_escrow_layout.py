"""The order escrow's shape (STYLE.md's target for this service): the core depends only on the
domain, its ports, the contracts and the clock; only the adapters do I/O; only inject.py names
PostgreSQL's adapter; the old hand-built HTTP layer and the service's own users are gone."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[3] / "services" / "order_escrow" / "adledger_order_escrow"
IO_LIBRARIES = {"aiokafka", "asyncpg", "faust", "starlette", "fastapi", "uvicorn", "httpx"}
#: What the core may import besides the standard library.
CORE_MAY_IMPORT = (
    "adledger_order_escrow.domain",
    "adledger_order_escrow.ports",
    "adledger_contracts.",
    "adledger_libs.clock",
    "adledger_libs.logs",
    "adledger_auth.roles",
)


def _modules(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def _first_party(modules: set[str]) -> set[str]:
    return {module for module in modules if module.startswith("adledger_")}


def test_the_core_imports_only_the_domain_its_ports_the_contracts_and_the_clock() -> None:
    imported = _first_party(_modules(PACKAGE / "core.py"))
    assert imported, "the core imports its ports"
    assert {module for module in imported if not module.startswith(CORE_MAY_IMPORT)} == set()
    assert not {module.split(".")[0] for module in _modules(PACKAGE / "core.py")} & IO_LIBRARIES


def test_only_adapters_do_io_and_only_inject_names_the_postgres_adapter() -> None:
    for path in PACKAGE.rglob("*.py"):
        relative = path.relative_to(PACKAGE)
        modules = _modules(path)
        if relative.parts[0] not in {"adapters"}:
            assert not {module.split(".")[0] for module in modules} & IO_LIBRARIES, relative
        if relative.parts[0] in {"domain", "ports"}:
            assert not {m for m in modules if m.startswith("adledger_order_escrow.adapters")}, relative
        if str(relative) not in {"inject.py", "adapters/postgres.py"}:
            assert "adledger_order_escrow.adapters.postgres" not in modules, relative


def test_the_old_http_layer_and_the_services_own_users_are_gone() -> None:
    for path in PACKAGE.rglob("*.py"):
        modules = _modules(path)
        assert not modules & {"adledger_libs.api", "adledger_libs.http"}, path
        assert "platform_token" not in path.read_text(), path
