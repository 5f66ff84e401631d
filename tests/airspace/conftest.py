"""Fixtures for the airspace tests: the shipped example stores and a small valid document."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from nestd.airspace import Airspace, load_airspace

from .stores import GEOFENCES, base_doc


@pytest.fixture
def doc() -> dict[str, Any]:
    return copy.deepcopy(base_doc())


@pytest.fixture(scope="session")
def richardson() -> Airspace:
    return load_airspace(GEOFENCES / "us-tx-richardson.geojson")


@pytest.fixture(scope="session")
def bertrange() -> Airspace:
    return load_airspace(GEOFENCES / "lu-bertrange.geojson")
