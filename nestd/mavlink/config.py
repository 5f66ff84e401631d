"""Settings for the MAVLink fleet link: endpoints, our identity, timing, per-vehicle signing."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

DEFAULT_PROFILES_DIR = Path(__file__).resolve().parent.parent.parent / "firmware_profiles"


class EndpointConfig(BaseModel):
    """One place vehicles are reached: a UDP port we listen on, a UDP peer, or a serial radio."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="Short name used in logs and metrics, e.g. 'radio0'.")
    kind: Literal["udp_listen", "udp_connect", "serial"] = Field(
        description="udp_listen binds host:port and answers whoever sends (PX4 SITL's 14540, "
        "a shared GCS port 14550); udp_connect sends to host:port; serial opens a radio."
    )
    host: str = Field("127.0.0.1", description="Address to bind (listen) or send to (connect).")
    port: int | None = Field(None, ge=1, le=65535, description="UDP port.")
    device: str | None = Field(None, description="Serial device, e.g. /dev/ttyUSB0.")
    baud: int = Field(57600, gt=0, description="Serial baud rate.")
    identify_by: Literal["sysid", "address"] = Field(
        "sysid",
        description="sysid: one vehicle per system id, whichever address it is heard from "
        "(redundant links work). address: each (source address, system id) is its own "
        "vehicle, for fleets past 254 on one port where ids repeat; such vehicles get fleet "
        "keys from 1000 up, in discovery order.",
    )
    sysids: list[int] | None = Field(
        None,
        description="System ids allowed on this endpoint. A message from any other id is "
        "counted as spoofed and dropped. None allows any.",
    )

    @model_validator(mode="after")
    def _check_kind(self) -> EndpointConfig:
        if self.kind.startswith("udp") and self.port is None:
            raise ValueError(f"endpoint {self.name!r}: a UDP endpoint needs a port")
        if self.kind == "serial" and not self.device:
            raise ValueError(f"endpoint {self.name!r}: a serial endpoint needs a device")
        for s in self.sysids or []:
            if not 1 <= s <= 255:
                raise ValueError(f"endpoint {self.name!r}: system id {s} is not in 1..255")
        return self


class SigningConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    key_file: Path = Field(description="File with the 32-byte key as 64 hex digits.")
    required: bool = Field(
        True, description="Reject (and count) unsigned or badly signed messages from it."
    )
    link_id: int = Field(1, ge=0, le=255, description="Our signing link id towards it.")


class VehicleLinkConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sysid: int = Field(ge=1, le=255)
    signing: SigningConfig | None = None


class LinkConfig(BaseModel):
    """The fleet link as a whole."""

    model_config = ConfigDict(extra="forbid")

    own_sysid: int = Field(250, ge=1, le=255, description="Our MAVLink system id.")
    own_compid: int = Field(
        190, ge=1, le=255, description="Our component id (190: MAV_COMP_ID_MISSIONPLANNER)."
    )
    endpoints: list[EndpointConfig] = Field(min_length=1)
    vehicles: list[VehicleLinkConfig] = Field(default_factory=list)
    heartbeat_interval_s: float = Field(
        1.0, gt=0, le=5, description="GCS heartbeat to each vehicle (PX4's datalink-loss "
        "failsafe listens for it)."
    )
    link_lost_after_s: float = Field(3.0, gt=0, description="Silence that marks a link lost.")
    timesync_interval_s: float = Field(5.0, gt=0, description="TIMESYNC probe period.")
    setup_retry_s: float = Field(
        10.0, gt=0, description="Retry stream/identity setup this often until it succeeds."
    )
    profiles_dir: Path = Field(DEFAULT_PROFILES_DIR, description="Firmware profile folder.")
    rcvbuf_bytes: int = Field(4 << 20, ge=65536, description="UDP socket receive buffer.")

    @model_validator(mode="after")
    def _unique(self) -> LinkConfig:
        names = [e.name for e in self.endpoints]
        if len(set(names)) != len(names):
            raise ValueError("endpoint names must be unique")
        ids = [v.sysid for v in self.vehicles]
        if len(set(ids)) != len(ids):
            raise ValueError("vehicle system ids must be unique")
        if self.own_sysid in ids:
            raise ValueError(f"own_sysid {self.own_sysid} is also configured as a vehicle")
        return self
