"""The job API's messages, as pydantic models: what the retailer sends and what nestd answers.

Every model is strict (a "2" is not a number), forbids unknown fields, and refuses NaN and
infinity, so a payload either means exactly one thing or is rejected with field-level reasons.
Times are RFC 3339 strings with a UTC offset; units are in the field names.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from nestd.jobs.lifecycle import JobState

API_VERSION = 1
MAX_PAYLOAD_BYTES = 16 * 1024  # larger MQTT messages are rejected unread

ORDER_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$"
STORE_ID_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"  # the same rule as the daemon config's store_id

OrderId = Annotated[str, Field(pattern=ORDER_ID_PATTERN,
                               description="The retailer's order id: 1-64 of A-Z a-z 0-9 . _ : -")]
StoreId = Annotated[str, Field(pattern=STORE_ID_PATTERN,
                               description="The store's id: 1-63 of a-z 0-9 _ -")]


class _Msg(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True, allow_inf_nan=False)


class Destination(_Msg):
    lat_deg: float = Field(ge=-90, le=90, description="WGS84 latitude of the drop point.")
    lon_deg: float = Field(ge=-180, le=180, description="WGS84 longitude of the drop point.")
    notes: str | None = Field(None, max_length=500,
                              description="Drop-point notes for people (e.g. 'back garden').")


class Dimensions(_Msg):
    length_cm: float = Field(gt=0, le=200, description="Outer length of the parcel, cm.")
    width_cm: float = Field(gt=0, le=200, description="Outer width of the parcel, cm.")
    height_cm: float = Field(gt=0, le=200, description="Outer height of the parcel, cm.")


class Parcel(_Msg):
    mass_kg: float = Field(gt=0, le=50, description="Parcel mass with packaging, kg.")
    dimensions: Dimensions | None = Field(
        None, description="Outer dimensions, if known (checked against the drones' parcel box).")


class MethodPreference(StrEnum):
    ANY = "any"
    WINCH = "winch"
    LAND = "land"


class Job(_Msg):
    """A delivery order (also the body of a quote request)."""

    order_id: OrderId
    store_id: StoreId
    destination: Destination
    parcel: Parcel
    promised_by: AwareDatetime = Field(description="Latest acceptable delivery time.")
    priority: int = Field(0, ge=0, le=9, description="Higher goes first among equal deadlines.")
    method: MethodPreference = Field(MethodPreference.ANY, strict=False,
                                     description="Delivery method preference.")
    customer_ref: str | None = Field(None, max_length=128,
                                     description="Opaque customer contact reference.")


class CancelRequest(_Msg):
    """Cancel one order; the order id is in the topic. An empty payload is a cancel too."""

    reason: str | None = Field(None, max_length=200,
                               description="Why, for people (kept in the job's history).")


class Reason(_Msg):
    code: str = Field(description="Machine-readable reason code (a ReasonCode value; new codes "
                                  "may be added, so treat unknown ones as generic).")
    message: str = Field(description="The same for people.")
    field: str | None = Field(None, description="Dotted path of the offending field, if any.")


class ReasonCode(StrEnum):
    # intake
    INVALID_JSON = "invalid_json"
    INVALID_FIELD = "invalid_field"
    MISSING_FIELD = "missing_field"
    UNKNOWN_FIELD = "unknown_field"
    TOO_LARGE = "too_large"
    WRONG_STORE = "wrong_store"
    DEADLINE_PASSED = "deadline_passed"
    LAT_LON_SWAPPED = "lat_lon_swapped"
    ORDER_ID_MISMATCH = "order_id_mismatch"
    DUPLICATE_ORDER_ID = "duplicate_order_id"
    UNKNOWN_ORDER = "unknown_order"
    INTERNAL_ERROR = "internal_error"
    # quote / dispatch
    OVERWEIGHT = "overweight"
    OVERSIZE = "oversize"
    OUTSIDE_SERVICE_AREA = "outside_service_area"
    NO_LEGAL_ROUTE = "no_legal_route"
    ENERGY = "energy"
    WIND = "wind"
    GROUND_STOP = "ground_stop"
    NO_DRONE_IN_TIME = "no_drone_in_time"
    NO_DRONE = "no_drone"
    METHOD_UNAVAILABLE = "method_unavailable"
    # flight
    CANCELLED_BY_CUSTOMER = "cancelled_by_customer"
    PREFLIGHT_FAILED = "preflight_failed"
    UPLOAD_FAILED = "upload_failed"
    VALIDATION_FAILED = "validation_failed"
    LINK_LOST = "link_lost"
    SAFETY_ACTION = "safety_action"
    FLIGHT_ERROR = "flight_error"
    DAEMON_RESTART = "daemon_restart"
    # cancel refusals
    ALREADY_ENDED = "already_ended"
    ALREADY_DELIVERED = "already_delivered"
    NOT_CANCELLABLE = "not_cancellable"


class Rejection(_Msg):
    """Why a submitted message was not accepted; sent to jobs/rejected (and a response topic)."""

    # Default None: rejections are published with None fields left out.
    order_id: str | None = Field(None, description="The order id, if one could be read.")
    store_id: str
    topic: str = Field(description="Where the rejected message was published.")
    reasons: tuple[Reason, ...] = Field(description="Every problem found, not just the first.")
    received_at: AwareDatetime


class ParcelWhere(StrEnum):
    AT_NEST = "at_nest"
    ABOARD = "aboard"
    DELIVERED = "delivered"
    UNKNOWN = "unknown"


class JobStatus(_Msg):
    """One lifecycle event; the latest is retained at jobs/{order_id}/status."""

    order_id: str
    store_id: str
    seq: int = Field(ge=1, description="Per-job event number, 1, 2, 3...: deduplicate on it.")
    state: JobState
    at: AwareDatetime = Field(description="When the job entered this state.")
    reason: Reason | None = Field(None, description="Why, for off-ramp and fallback states.")
    drone: int | None = Field(None, description="Vehicle key of the drone flying the job.")
    pad: str | None = Field(None, description="The pad the drone flies from.")
    eta_at_door: AwareDatetime | None = Field(None, description="Expected drop time.")
    parcel: ParcelWhere = Field(ParcelWhere.AT_NEST, description="Where the parcel is now.")
    detail: dict[str, Any] = Field(default_factory=dict,
                                   description="Extra facts about the event; keys may be added.")


class Quote(_Msg):
    """The answer to a quote request: can a drone deliver this, when, and if not, why."""

    order_id: str
    store_id: str
    eligible: bool = Field(description="Whether a drone can deliver this order in time.")
    reasons: tuple[Reason, ...] = Field((), description="Why not, when not eligible.")
    launch_at: AwareDatetime | None = Field(None, description="Expected launch time.")
    eta_at_door: AwareDatetime | None = Field(None, description="Expected drop time.")
    confidence: float = Field(0.0, ge=0, le=1,
                              description="How likely the ETA holds (wind, queue, weather).")
    drone: int | None = Field(None, description="Vehicle key of the drone that would fly it.")
    quoted_at: AwareDatetime
    valid_until: AwareDatetime | None = Field(
        None, description="The quote holds until then; a later order is judged afresh.")
