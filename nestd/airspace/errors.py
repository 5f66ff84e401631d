"""Typed errors raised by the airspace domain, all rooted at AirspaceError."""

from __future__ import annotations

from dataclasses import dataclass


class AirspaceError(Exception):
    """Root of every error the airspace package raises."""


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with one feature of an airspace file."""

    feature_id: str
    problem: str

    def __str__(self) -> str:
        return f"{self.feature_id}: {self.problem}"


class AirspaceValidationError(AirspaceError):
    """An airspace file was rejected; `problems` lists every reason, not just the first."""

    def __init__(self, source: str, problems: list[Problem]) -> None:
        self.source = source
        self.problems = tuple(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"{source}: {len(self.problems)} problem(s):\n{lines}")

    def feature_ids(self) -> set[str]:
        return {p.feature_id for p in self.problems}


class Ed269Error(AirspaceValidationError):
    """An ED-269 UAS geographical zone document was rejected."""


class AirspaceTimeError(AirspaceError):
    """A time was given without a timezone, or is otherwise unusable."""
