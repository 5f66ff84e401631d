"""Typed errors raised by the safety domain, all rooted at SafetyError."""

from __future__ import annotations


class SafetyError(Exception):
    """Root of every error the safety package raises."""


class RouteError(SafetyError, ValueError):
    """A route given to the energy model can't be flown as described (too few points...)."""


class SafetyInputError(SafetyError, ValueError):
    """An input is outside what the model accepts (negative mass, a NaN wind...)."""
