"""Files the repository ships for operators are valid."""

from __future__ import annotations

from pathlib import Path

from nestd.config import load_config

ROOT = Path(__file__).resolve().parent.parent.parent


def test_example_config_is_valid() -> None:
    cfg = load_config(ROOT / "systemd" / "nestd.example.toml")
    assert cfg.store_id == "frisco-01"
    assert [e.port for e in cfg.mavlink.endpoints] == [14540, 14541, 14542]
