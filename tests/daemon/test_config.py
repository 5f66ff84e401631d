"""The daemon's config file: good files load, bad ones are refused with the file and field named."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from nestd.config import ConfigError, load_config

ROOT = Path(__file__).resolve().parent.parent.parent

GOOD = """
store_id = "frisco-01"
state_dir = "/tmp/nestd-test"

[mqtt]
host = "127.0.0.1"
port = 1883

[telemetry]
rate_hz = 2.0

[mavlink]
own_sysid = 250

[[mavlink.endpoints]]
name = "sitl"
kind = "udp_listen"
port = 14540
"""


def write(tmp_path: Path, text: str, mode: int = 0o600) -> Path:
    p = tmp_path / "nestd.toml"
    p.write_text(text)
    os.chmod(p, mode)
    return p


def test_good_config_loads_with_defaults(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, GOOD))
    assert cfg.store_id == "frisco-01"
    assert cfg.mavlink.endpoints[0].port == 14540
    assert cfg.mavlink.heartbeat_interval_s == 1.0


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (GOOD.replace('store_id = "frisco-01"', 'store_id = "Frisco 01"'), "store_id"),
        (GOOD.replace("rate_hz = 2.0", "rate_hz = -1"), "telemetry.rate_hz"),
        (GOOD.replace("port = 14540", "port = 99999"), "mavlink.endpoints.0.port"),
        (GOOD + "\n[unknown]\nx = 1\n", "unknown: Extra inputs are not permitted"),
        (GOOD.replace('kind = "udp_listen"', 'kind = "carrier_pigeon"'), "kind"),
        (GOOD.replace("[mavlink]", "[mavlink\n"), "Expected"),
        (GOOD.replace("own_sysid = 250", "own_sysid = 0"), "own_sysid"),
    ],
    ids=["bad-store-id", "negative-rate", "port-range", "unknown-section", "unknown-kind",
         "toml-syntax", "sysid-zero"],
)
def test_bad_config_names_the_field(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError, match=message) as err:
        load_config(path)
    assert str(path) in str(err.value)


def test_missing_file_is_one_clear_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="No such file"):
        load_config(tmp_path / "absent.toml")


def test_world_readable_file_with_a_password_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace("port = 1883", 'port = 1883\npassword = "s3cret"'), 0o644)
    with pytest.raises(ConfigError, match="readable by everyone"):
        load_config(path)


def test_password_comes_from_the_environment(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, GOOD), environ={"NESTD_MQTT_PASSWORD": "from-env"})
    assert cfg.mqtt.password == "from-env"


def test_check_config_command(tmp_path: Path) -> None:
    good = write(tmp_path, GOOD)
    r = subprocess.run([sys.executable, "-m", "nestd", "check-config", str(good)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "OK" in r.stdout
    bad = tmp_path / "bad.toml"
    bad.write_text(GOOD.replace("rate_hz = 2.0", "rate_hz = 0"))
    r = subprocess.run([sys.executable, "-m", "nestd", "check-config", str(bad)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1
    assert "telemetry.rate_hz" in r.stderr and "Traceback" not in r.stderr


def test_check_config_loads_the_airspace_relative_to_the_config_file(tmp_path: Path) -> None:
    ok = subprocess.run([sys.executable, "-m", "nestd", "check-config",
                         str(ROOT / "systemd" / "nestd.example.toml")],
                        capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stderr
    assert "airspace us-tx-richardson-0042" in ok.stdout
    missing = write(tmp_path, GOOD + '\n[airspace]\nfile = "nowhere.geojson"\n')
    r = subprocess.run([sys.executable, "-m", "nestd", "check-config", str(missing)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1
    assert "nowhere.geojson" in r.stderr and "Traceback" not in r.stderr
    broken = tmp_path / "broken.geojson"
    broken.write_text('{"type": "FeatureCollection", "features": []}')
    bad = write(tmp_path, GOOD + '\n[airspace]\nfile = "broken.geojson"\n')
    r = subprocess.run([sys.executable, "-m", "nestd", "check-config", str(bad)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1
    assert "broken.geojson" in r.stderr and "Traceback" not in r.stderr


def test_jobs_settings_are_validated(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"jobs\.launch_spacing_s"):
        load_config(write(tmp_path, GOOD + "\n[jobs]\nlaunch_spacing_s = -1\n"))
    with pytest.raises(ConfigError, match=r"jobs\.share_group"):
        load_config(write(tmp_path, GOOD + '\n[jobs]\nshare_group = "a/b"\n'))
    with pytest.raises(ConfigError, match=r"airframe\.max_payload_kg"):
        load_config(write(tmp_path, GOOD + '\n[airframe]\nmax_payload_kg = "2"\n'))
