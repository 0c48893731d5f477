"""The import rules of ARCHITECTURE.md, read from the code itself: every ``import`` of every
module (including those inside functions) is checked against what its package may use."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.helpers import REPO

PACKAGES = ("streams", "detectors", "alerts")


def modules() -> dict[str, Path]:
    out = {}
    for package in PACKAGES:
        for path in (REPO / package).rglob("*.py"):
            parts = path.relative_to(REPO).with_suffix("").parts
            out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def imports_of(path: Path) -> set[str]:
    """Every module an import statement in the file names (relative imports resolved)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                raise AssertionError(f"{path}: relative import; ShaftWatch imports absolutely")
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return found


MODULES = modules()
IMPORTS = {name: imports_of(path) for name, path in MODULES.items()}


def offenders(where, forbidden) -> list[str]:
    """``module -> import`` pairs where a module matched by ``where`` imports a ``forbidden`` one."""
    return sorted(f"{module} -> {target}" for module, targets in IMPORTS.items() if where(module)
                  for target in targets if forbidden(target))


def within(*prefixes: str):
    return lambda name: any(name == p or name.startswith(p + ".") for p in prefixes)


def test_the_rules_see_the_code():
    # A walker that found nothing would pass every rule below.
    assert len(MODULES) > 60 and "streams.worker.app" in MODULES and "alerts.store.incidents" in MODULES
    assert "streams.worker.app" in IMPORTS["streams.worker.agents.power"]


@pytest.mark.parametrize("rule, where, forbidden", [
    ("detectors/ is pure: no Kafka, no web, nothing of streams/ or alerts/", within("detectors"),
     within("streams", "alerts", "faust", "aiokafka", "aiohttp", "sqlalchemy")),
    ("alerts/ knows nothing of Kafka or of streams/", within("alerts"), within("streams", "faust", "aiokafka")),
    ("the contract stands on its own", within("streams.contract"), within("streams", "alerts", "detectors")),
    ("only the worker imports the Faust app (and the CLI starts it)",
     lambda name: not within("streams.worker")(name) and name != "streams.ops.cli", within("streams.worker")),
    ("Kafka plumbing and the edge do not reach into processes",
     within("streams.kafka", "streams.edge", "streams.config", "streams.contract"), within("streams.ops")),
])
def test_import_rules(rule, where, forbidden):
    bad = offenders(where, forbidden)
    # the contract imports its own modules, of course
    if rule.startswith("the contract"):
        bad = [b for b in bad if not b.split(" -> ")[1].startswith("streams.contract")]
    assert bad == [], f"{rule}:\n  " + "\n  ".join(bad)
