"""MAVLink 2 message signing: per-vehicle keys, verification with replay protection, sans-io."""

from __future__ import annotations

import enum
import hashlib
import hmac
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pymavlink.dialects.v20 import ardupilotmega as mav

from nestd.mavlink.errors import MavlinkError

SIGNING_EPOCH_UNIX_S = 1420070400  # 2015-01-01T00:00:00Z, the spec's timestamp origin
NEW_STREAM_TOLERANCE = 60 * 100_000  # a new stream may lag our clock by one minute (10 µs units)


class SigningKeyError(MavlinkError):
    pass


def signing_timestamp(unix_s: float) -> int:
    """The spec's 48-bit timestamp: 10 µs units since 2015-01-01."""
    return int((unix_s - SIGNING_EPOCH_UNIX_S) * 100_000)


def load_key(path: Path) -> bytes:
    """A 32-byte secret from a file holding 64 hex digits (or the raw 32 bytes)."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise SigningKeyError(f"signing key {path}: {exc.strerror}") from None
    text = raw.strip()
    if len(raw) == 32 and not all(c in b"0123456789abcdefABCDEF" for c in raw):
        return raw
    try:
        key = bytes.fromhex(text.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        raise SigningKeyError(f"signing key {path}: expected 64 hex digits") from None
    if len(key) != 32:
        raise SigningKeyError(f"signing key {path}: expected 32 bytes, got {len(key)}")
    return key


class Verdict(enum.Enum):
    ACCEPTED = "accepted"
    UNSIGNED = "unsigned"  # accepted only when signing isn't required
    REJECTED_UNSIGNED = "rejected_unsigned"
    BAD_SIGNATURE = "bad_signature"
    REPLAYED = "replayed"


@dataclass
class SignatureChecker:
    """Checks one vehicle's incoming messages against its key."""

    key: bytes
    required: bool = True
    # Unsigned messages that are always let through, as the spec allows (RADIO_STATUS from
    # a local radio carries no signature).
    unsigned_allowed: frozenset[int] = frozenset({mav.MAVLINK_MSG_ID_RADIO_STATUS})
    streams: dict[tuple[int, int, int], int] = field(default_factory=dict)
    counts: dict[Verdict, int] = field(default_factory=lambda: dict.fromkeys(Verdict, 0))

    def check(self, msg: Any, now_unix_s: float) -> Verdict:
        verdict = self._check(msg, now_unix_s)
        self.counts[verdict] += 1
        return verdict

    def _check(self, msg: Any, now_unix_s: float) -> Verdict:
        buf = bytes(msg.get_msgbuf())
        if not is_signed(buf):
            if not self.required or msg.get_msgId() in self.unsigned_allowed:
                return Verdict.UNSIGNED
            return Verdict.REJECTED_UNSIGNED
        link_id = buf[-13]
        low, high = struct.unpack("<IH", buf[-12:-6])
        ts = low | (high << 32)
        digest = hashlib.sha256(self.key + buf[:-6]).digest()[:6]
        if not hmac.compare_digest(digest, buf[-6:]):
            return Verdict.BAD_SIGNATURE
        key = (link_id, msg.get_srcSystem(), msg.get_srcComponent())
        last = self.streams.get(key)
        if last is not None:
            if ts <= last:
                return Verdict.REPLAYED
        elif ts + NEW_STREAM_TOLERANCE < signing_timestamp(now_unix_s):
            return Verdict.REPLAYED
        self.streams[key] = ts
        return Verdict.ACCEPTED


def is_signed(frame: bytes) -> bool:
    """A MAVLink 2 frame with the signed incompatibility flag (and room for the signature)."""
    return len(frame) > 13 and frame[0] == 0xFD and bool(frame[2] & mav.MAVLINK_IFLAG_SIGNED)


def sign_outgoing(encoder_mav: Any, key: bytes, link_id: int, now_unix_s: float) -> None:
    """Make a pymavlink encoder sign everything it packs from now on."""
    s = encoder_mav.signing
    s.secret_key = key
    s.link_id = link_id & 0xFF
    s.sign_outgoing = True
    s.timestamp = max(s.timestamp, signing_timestamp(now_unix_s))


def setup_signing(target_system: int, target_component: int, key: bytes,
                  now_unix_s: float) -> Any:
    """The SETUP_SIGNING message that provisions `key` on a vehicle (send it unsigned or
    signed with the old key, over a trusted link)."""
    return mav.MAVLink_setup_signing_message(
        target_system, target_component, key, signing_timestamp(now_unix_s)
    )
