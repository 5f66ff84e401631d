"""Bad link settings and bad signing key files are refused with a reason."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from nestd.mavlink.config import EndpointConfig, LinkConfig, VehicleLinkConfig
from nestd.mavlink.signing import SigningKeyError, load_key

UDP = {"name": "a", "kind": "udp_listen", "port": 14540}


@pytest.mark.parametrize(
    ("endpoint", "message"),
    [
        ({"name": "a", "kind": "udp_listen"}, "needs a port"),
        ({"name": "r", "kind": "serial"}, "needs a device"),
        ({**UDP, "sysids": [0]}, "not in 1..255"),
        ({**UDP, "kind": "tcp"}, "kind"),
        ({**UDP, "identify_by": "mac"}, "identify_by"),
        ({**UDP, "speed": 1}, "Extra inputs"),
    ],
)
def test_bad_endpoint_is_refused(endpoint: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        EndpointConfig(**endpoint)


def test_duplicate_names_ids_and_own_sysid_clash_are_refused() -> None:
    with pytest.raises(ValidationError, match="endpoint names must be unique"):
        LinkConfig(endpoints=[EndpointConfig(**UDP), EndpointConfig(**UDP)])
    with pytest.raises(ValidationError, match="system ids must be unique"):
        LinkConfig(endpoints=[EndpointConfig(**UDP)],
                   vehicles=[VehicleLinkConfig(sysid=3), VehicleLinkConfig(sysid=3)])
    with pytest.raises(ValidationError, match="also configured as a vehicle"):
        LinkConfig(endpoints=[EndpointConfig(**UDP)], own_sysid=3,
                   vehicles=[VehicleLinkConfig(sysid=3)])
    with pytest.raises(ValidationError, match="endpoints"):
        LinkConfig(endpoints=[])


def test_key_file_in_hex_loads(tmp_path: Path) -> None:
    p = tmp_path / "k"
    p.write_text(bytes(range(32)).hex() + "\n")
    assert load_key(p) == bytes(range(32))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"zz" * 32, "64 hex digits"),
        (b"ab" * 16, "expected 32 bytes, got 16"),
        (b"\xff\xfe" * 3, "64 hex digits"),
    ],
)
def test_bad_key_file_is_refused(tmp_path: Path, content: bytes, message: str) -> None:
    p = tmp_path / "k"
    p.write_bytes(content)
    with pytest.raises(SigningKeyError, match=message):
        load_key(p)


def test_missing_key_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SigningKeyError, match="No such file"):
        load_key(tmp_path / "absent")
