"""Config problems as an ops person reads them: file, line, key path and the problem."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml
from pydantic import ValidationError

from streams.config.base import LocatedError


@dataclass(frozen=True)
class ConfigProblem:
    file: str
    line: int | None
    key: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.key or '(top level)'}: {self.message}"


class ConfigError(Exception):
    """Raised with every problem found, each naming file, line, key path and problem."""

    def __init__(self, problems: list[ConfigProblem]):
        self.problems = problems
        super().__init__("invalid configuration:\n" + "\n".join(f"  {p}" for p in problems))


def line_of(node: yaml.Node | None, loc: tuple) -> int | None:
    """Walk a composed YAML node along a pydantic error location; return a 1-based line."""
    line = node.start_mark.line + 1 if node is not None else None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            child = next((v for k, v in node.value if k.value == str(part)), None)
            if child is None:
                # An unknown key: point at the key itself.
                key = next((k for k, _ in node.value if k.value == str(part)), None)
                return key.start_mark.line + 1 if key is not None else line
            node = child
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
        else:
            break
        line = node.start_mark.line + 1
    return line


def explained(err: dict[str, Any]) -> tuple[tuple, str]:
    """One pydantic error as (key path, the problem in words)."""
    loc = tuple(err["loc"])
    message = err["msg"]
    ctx_error = (err.get("ctx") or {}).get("error")
    if isinstance(ctx_error, LocatedError):
        loc = loc + ctx_error.loc
        message = str(ctx_error)
    elif message.startswith("Value error, "):
        message = message[len("Value error, "):]
    if err["type"] in ("extra_forbidden", "unexpected_keyword_argument"):
        message = "unknown key (check the spelling; see the published config schema)"
    return loc, message


def problems_from(exc: ValidationError, file: str, root: yaml.Node | None) -> list[ConfigProblem]:
    problems = []
    for err in exc.errors():
        loc, message = explained(err)
        key = ".".join(str(p) for p in loc)
        problems.append(ConfigProblem(file, line_of(root, loc), key, message))
    return problems
