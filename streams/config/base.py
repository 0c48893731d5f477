"""What every config model shares: unknown keys are errors, values are immutable, and a
validator can say which key below its model is wrong (``located``)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Section(BaseModel):
    """Base of every config model: unknown keys are errors, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class LocatedError(ValueError):
    """A validator error that knows the key path below the model that raised it."""

    def __init__(self, loc: tuple, message: str):
        self.loc = loc
        super().__init__(message)


def located(loc: tuple, message: str) -> LocatedError:
    return LocatedError(loc, message)


def unique_ids(items: list, where: str) -> None:
    seen: set[str] = set()
    for i, item in enumerate(items):
        if item.id in seen:
            raise located((where, i, "id"), f"duplicate id {item.id!r}")
        seen.add(item.id)
