"""The `nestd` and `nestsim` commands as a user runs them."""

from __future__ import annotations

import io
import subprocess
import sys

from nestd.demo import run_demo


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True, timeout=60)


def test_nestd_help_lists_the_demo() -> None:
    r = run("nestd", "--help")
    assert r.returncode == 0
    assert "demo" in r.stdout and "drone-delivery nest" in r.stdout


def test_nestd_demo_rejects_bad_arguments_with_one_line() -> None:
    r = run("nestd", "demo", "--vehicles", "0")
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0 and "--vehicles" in r.stderr


def test_nestsim_help_and_bad_home() -> None:
    r = run("nestsim.cli", "run", "--home", "north")
    assert r.returncode == 2
    assert "LAT,LON,ALT_AMSL_M" in r.stderr


def test_nestsim_ctl_without_a_running_sim_says_so() -> None:
    r = run("nestsim.cli", "ctl", "--port", "1", "status")
    assert r.returncode == 2
    assert "nestsim:" in r.stderr and "Traceback" not in r.stderr


async def test_demo_quotes_orders_flies_the_eligible_ones_and_hands_the_rest_to_a_courier(
) -> None:
    out = io.StringIO()
    assert await run_demo(vehicles=2, speed=20.0, timeout_s=150.0, out=out) == 0
    text = out.getvalue()
    assert "4 of 4 deliveries completed (4 parcels lowered by winch); 3 orders went to a " \
        "courier" in text
    assert "courier: parcel 4.50 kg is over" in text
    assert "outside the operating area" in text
