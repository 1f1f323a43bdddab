"""docs/rules.md: every business rule with its one-line statement, the code that implements it and
the tests that prove it (issue 13). `python tools/rules_index.py` writes it (make schemas runs it);
`python tools/rules_index.py --check` fails when the file is not what the tree says now, and
tests/unit/test_rules_index.py runs the check, so the index cannot fall behind the code.

The statements come from the rules list the project is built to (`../shared/RULES.md` beside the
checkout); where that file is not there (a clone on its own), the statements already in
docs/rules.md are kept, and only the code and test references are recomputed.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
INDEX = ROOT / "docs" / "rules.md"
SHARED_RULES = ROOT.parent / "shared" / "RULES.md"
_RULE_LINE = re.compile(r"^- ([A-Z][0-9]+) (.+)$")
_INDEX_LINE = re.compile(r"^\| ([A-Z][0-9]+) \| (.+?) \| ")
_SOURCE_DIRS = ("libs", "services", "tools", "clients", "deploy/local", "bench")
_HEADER = """# Business rules: where each lives

Every rule the platform is built to (RULES.md of the project), with the code that implements it and
the tests that prove it. Written by `python tools/rules_index.py` (`make schemas`); a test fails when
it is out of date. A test names the rule it proves (`test_w8_...`, or the id in its text); code names
the rule it implements in a comment or docstring.

| rule | statement | code | tests |
| --- | --- | --- | --- |
"""


def statements() -> dict[str, str]:
    """Rule id → its statement, from RULES.md when present, else from the index as it is."""
    if SHARED_RULES.is_file():
        found: dict[str, str] = {}
        for line in SHARED_RULES.read_text().splitlines():
            match = _RULE_LINE.match(line)
            if match:
                found[match.group(1)] = match.group(2).strip()
        return found
    return {match.group(1): match.group(2).replace("\\|", "|") for line in INDEX.read_text().splitlines()
            if (match := _INDEX_LINE.match(line))}


def _files(directories: Iterable[str], *, tests: bool) -> list[Path]:
    found: list[Path] = []
    for directory in directories:
        base = ROOT / directory
        if base.is_dir():
            found += [path for path in base.rglob("*.py") if ("tests" in path.parts) == tests and ".venv" not in path.parts]
    return sorted(found)


def _mentions(rule: str, text: str) -> bool:
    return re.search(rf"(?<![A-Za-z0-9]){rule}(?![0-9])", text) is not None or f"test_{rule.lower()}_" in text


def index(rules: dict[str, str]) -> str:
    code_files = {path: path.read_text(errors="replace") for path in _files(_SOURCE_DIRS, tests=False)}
    test_files = {path: path.read_text(errors="replace") for path in _files(("tests",), tests=True)}
    lines = [_HEADER]
    for rule, statement in rules.items():
        code = sorted(str(path.relative_to(ROOT)) for path, text in code_files.items() if _mentions(rule, text))
        tests = sorted(str(path.relative_to(ROOT)) for path, text in test_files.items() if _mentions(rule, text))
        lines.append(
            f"| {rule} | {statement.replace('|', chr(92) + '|')} | {'<br>'.join(f'`{item}`' for item in code) or '—'} "
            f"| {'<br>'.join(f'`{item}`' for item in tests) or '**none yet**'} |\n"
        )
    return "".join(lines)


def main(argv: list[str]) -> int:
    text = index(statements())
    if "--check" in argv:
        if not INDEX.is_file() or INDEX.read_text() != text:
            print("docs/rules.md is out of date: run `python tools/rules_index.py` (make schemas)", file=sys.stderr)
            return 1
        return 0
    INDEX.write_text(text)
    print(INDEX)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
