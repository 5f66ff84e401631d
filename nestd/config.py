"""The daemon's configuration file: one TOML document, validated, with env overrides for secrets."""

from __future__ import annotations

import os
import stat
import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from nestd.mavlink.config import LinkConfig
from nestd.safety.airframe import Airframe


class ConfigError(Exception):
    """A configuration file that can't be used; the message says which file and field."""


class MqttConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    host: str = Field("127.0.0.1", description="Broker host.")
    port: int = Field(1883, ge=1, le=65535, description="Broker port.")
    username: str | None = Field(None, description="Broker user name.")
    password: str | None = Field(
        None, description="Broker password. Prefer the NESTD_MQTT_PASSWORD environment variable "
        "(or a systemd credential) to writing it here."
    )
    client_id: str | None = Field(None, description="MQTT client id; default nestd-<store>.")
    keepalive_s: int = Field(30, ge=5, le=600, description="MQTT keepalive.")
    reconnect_max_s: float = Field(30.0, gt=0, description="Longest wait between reconnects.")


class TelemetryConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rate_hz: float = Field(2.0, gt=0, le=20, description="Vehicle state messages per second.")


class AirspaceConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    file: Path = Field(description="The store's airspace: GeoJSON (see geofences/README.md).")
    reload_poll_s: float = Field(
        5.0, gt=0, description="How often the file is checked for changes; a valid new "
        "version replaces the airspace in force, an invalid one is logged and ignored.")


class JobsConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    share_group: str | None = Field(
        None, pattern=r"^[A-Za-z0-9_-]{1,64}$",
        description="Subscribe through MQTT 5 shared subscriptions $share/<group>/ (groundwork "
        "for a standby daemon, which is not finished: run one daemon per store).")
    session_expiry_s: int = Field(
        7 * 24 * 3600, ge=0, le=0xFFFFFFFF,
        description="How long the broker keeps our session (and queued jobs) while we are away.")
    max_payload_bytes: int = Field(16 * 1024, ge=1024, le=1024 * 1024,
                                   description="Larger job messages are rejected unread.")
    decline_if_late: bool = Field(
        True, description="Decline a job no drone can deliver by its promised time (else keep "
        "it queued until one can or the time passes).")
    launch_spacing_s: float = Field(30.0, ge=0, description="Least time between two launches.")
    assign_ahead_s: float = Field(
        0.0, ge=0, description="Assign a drone this long before it can launch.")
    turnaround_s: float = Field(120.0, ge=0,
                                description="Battery swap and checks between two flights.")
    quote_valid_for_s: float = Field(120.0, gt=0, description="How long a quote holds.")
    max_parcel_dims_cm: tuple[float, float, float] = Field(
        (40.0, 30.0, 25.0), description="The box a parcel must fit, in any orientation.")
    reattach_wait_s: float = Field(
        60.0, gt=0, description="After a restart, how long to wait for an airborne drone to "
        "be heard before warning (nestd keeps waiting and warning).")


class DaemonConfig(BaseModel):
    """The whole file. Sections: [mqtt], [telemetry], [mavlink], [airspace], [airframe], [jobs]
    (see docs/configuration.md)."""

    model_config = ConfigDict(extra="forbid")

    store_id: str = Field(
        pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$",
        description="This store's id; every MQTT topic is namespaced by it.",
    )
    state_dir: Path = Field(Path("/var/lib/nestd"), description="Journal and flight records.")
    mqtt: MqttConfig = Field(default_factory=MqttConfig)
    telemetry: TelemetryConfig = Field(default_factory=TelemetryConfig)
    mavlink: LinkConfig
    airspace: AirspaceConfig | None = Field(
        None, description="The store's airspace; without it nestd only watches and reports "
        "(no jobs).")
    airframe: Airframe = Field(default_factory=Airframe,
                               description="The fleet's airframe (see nestd.safety.airframe).")
    jobs: JobsConfig = Field(default_factory=JobsConfig)


def load_config(path: Path, environ: dict[str, str] | None = None) -> DaemonConfig:
    """Read and validate `path`; raise ConfigError listing every problem, one per line."""
    env = os.environ if environ is None else environ
    try:
        st = path.stat()
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: {exc.strerror}") from None
    try:
        doc: dict[str, Any] = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    mqtt = doc.get("mqtt")
    if st.st_mode & stat.S_IROTH and isinstance(mqtt, dict) and mqtt.get("password"):
        raise ConfigError(f"{path}: holds a password but is readable by everyone; "
                          f"chmod o-r {path}")
    password = env.get("NESTD_MQTT_PASSWORD")
    if password:
        doc.setdefault("mqtt", {})["password"] = password
    try:
        config = DaemonConfig.model_validate(doc)
    except ValidationError as exc:
        lines = []
        for e in exc.errors(include_url=False):
            where = ".".join(str(p) for p in e["loc"]) or "(top level)"
            lines.append(f"{path}: {where}: {e['msg']}")
        raise ConfigError("\n".join(lines)) from None
    if config.airspace is not None and not config.airspace.file.is_absolute():
        # Relative to the config file, as people read it, not to the daemon's cwd.
        config.airspace.file = path.parent / config.airspace.file
    return config
