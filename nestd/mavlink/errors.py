"""Typed MAVLink errors; each carries the protocol's own result code where there is one."""

from __future__ import annotations


class MavlinkError(Exception):
    """Root of every error the MAVLink layer raises."""


class CommandError(MavlinkError):
    """The vehicle answered a command with a result other than ACCEPTED."""

    def __init__(self, command: int, result: int, text: str = "") -> None:
        self.command = command
        self.result = result  # MAV_RESULT
        super().__init__(text or f"command {command} refused: MAV_RESULT {result}")


class CommandTimeout(MavlinkError):
    def __init__(self, command: int, attempts: int) -> None:
        self.command = command
        self.attempts = attempts
        super().__init__(f"command {command}: no COMMAND_ACK after {attempts} attempts")


class MissionTransferError(MavlinkError):
    """A mission/fence/rally upload, download or clear failed."""

    def __init__(self, mission_type: int, result: int | None, step: str, text: str = "") -> None:
        self.mission_type = mission_type
        self.result = result  # MAV_MISSION_RESULT, or None for a timeout
        self.step = step
        super().__init__(
            text or f"mission type {mission_type} transfer failed at {step}: result {result}"
        )


class MissionTimeout(MissionTransferError):
    def __init__(self, mission_type: int, step: str) -> None:
        text = f"mission type {mission_type}: timeout at {step}"
        super().__init__(mission_type, None, step, text)


class MissionMismatch(MavlinkError):
    """What the vehicle holds after an upload differs from what was sent."""

    def __init__(self, mission_type: int, seq: int, detail: str) -> None:
        self.mission_type = mission_type
        self.seq = seq
        super().__init__(f"mission type {mission_type} read-back differs at seq {seq}: {detail}")


class ParamError(MavlinkError):
    def __init__(self, name: str, text: str) -> None:
        self.name = name
        super().__init__(f"parameter {name}: {text}")


class ParamTimeout(ParamError):
    def __init__(self, name: str, attempts: int) -> None:
        super().__init__(name, f"no PARAM_VALUE after {attempts} attempts")


class StateTimeout(MavlinkError, TimeoutError):
    """An expected change (a mode, an altitude) didn't show in telemetry in time."""


class LinkLost(MavlinkError):
    """The vehicle stopped being heard while a call was waiting for it."""


class ProfileError(MavlinkError):
    """A firmware profile file is invalid; the message names the file and the field."""
