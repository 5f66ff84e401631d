"""Intake: the bytes retailers publish, turned into a job model or field-level reasons.

Nothing here raises on any payload. The schema checks are pydantic's (strict, in JSON mode),
with its errors rewritten as plain English that names the field and what it may hold; the
checks the schema can't make (this store, the deadline, swapped coordinates, repeated keys)
come on top, so one rejection lists every problem at once.
"""

from __future__ import annotations

import codecs
import difflib
import enum
import json
import math
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeGuard, TypeVar, get_args

import annotated_types
from pydantic import AwareDatetime, BaseModel, TypeAdapter, ValidationError
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails, from_json

from nestd.jobs.models import (
    MAX_PAYLOAD_BYTES,
    ORDER_ID_PATTERN,
    STORE_ID_PATTERN,
    CancelRequest,
    Job,
    OrderId,
    Reason,
    ReasonCode,
)

M = TypeVar("M", bound=BaseModel)

MAX_REASONS = 20  # a payload of 2,000 unknown keys gets a short answer, not 2,000 reasons
SHOWN_CHARS = 60  # how much of a sent value or key a message quotes back

_ORDER_ID: TypeAdapter[str] = TypeAdapter(OrderId)
_AWARE_DATETIME: TypeAdapter[datetime] = TypeAdapter(AwareDatetime)

_UNITS = {"deg": "degrees", "kg": "kg", "cm": "cm", "m": "m", "s": "s"}
_EXAMPLE_TIME = "2030-06-14T15:30:00-05:00"


# Keyed by the models' own patterns: if a pattern changes without its rule here, messages
# fall back to quoting the pattern instead of describing a rule that no longer holds.
_PATTERN_RULES = {
    ORDER_ID_PATTERN: "1 to 64 characters from A-Z a-z 0-9 . _ : -, starting with a letter or "
                      "digit",
    STORE_ID_PATTERN: "1 to 63 characters from a-z 0-9 _ -, starting with a letter or digit",
}


# -- the API ----------------------------------------------------------------------------------


def parse_job(raw: bytes, *, store_id: str, now: datetime,
              max_bytes: int = MAX_PAYLOAD_BYTES) -> Job | list[Reason]:
    """A job from `jobs/submit`, or every reason it isn't one (never empty, never raises).

    `store_id` is the store this daemon serves; `now` (timezone-aware) is what `promised_by`
    must be later than.
    """
    return _parse_order(raw, store_id, now, max_bytes)


def parse_quote_request(raw: bytes, *, store_id: str, now: datetime,
                        max_bytes: int = MAX_PAYLOAD_BYTES) -> Job | list[Reason]:
    """A quote request: the job the retailer would submit, held to the same checks."""
    return _parse_order(raw, store_id, now, max_bytes)


def parse_cancel(raw: bytes, *,
                 max_bytes: int = MAX_PAYLOAD_BYTES) -> CancelRequest | list[Reason]:
    """A cancel request; an empty payload is a cancel with no reason."""
    if len(raw) <= max_bytes and not raw.strip():
        return CancelRequest()
    read = _read(raw, CancelRequest, max_bytes)
    return _capped(read.reasons) if read.value is None else read.value


def order_id_hint(raw: bytes, *, max_bytes: int = MAX_PAYLOAD_BYTES) -> str | None:
    """Best effort: the order id in a payload that failed validation, for the rejection.

    Reads truncated JSON too. None when no valid order id string can be read.
    """
    if len(raw) > max_bytes:
        return None
    try:
        data = from_json(raw.decode("utf-8"), allow_partial=True)
    except ValueError:  # UnicodeDecodeError is one
        return None
    value = data.get("order_id") if isinstance(data, dict) else None
    if not isinstance(value, str):
        return None
    try:
        return _ORDER_ID.validate_python(value, strict=True)
    except ValidationError:
        return None


# -- reading one payload ----------------------------------------------------------------------


@dataclass
class _Read(Generic[M]):
    value: M | None  # None whenever there are reasons
    reasons: list[Reason]
    tree: dict[str, Any]  # the payload as plain JSON values; {} if it couldn't be read
    bad: frozenset[str]  # dotted paths that already have a reason


class _Object(dict[str, Any]):
    """A JSON object that remembers which of its keys were sent more than once."""

    __slots__ = ("repeated",)

    def __init__(self, pairs: list[tuple[str, Any]]) -> None:
        super().__init__(pairs)
        self.repeated: list[str] = []
        if len(self) < len(pairs):
            seen: set[str] = set()
            for key, _ in pairs:
                if key in seen and key not in self.repeated:
                    self.repeated.append(key)
                seen.add(key)


def _reason(code: ReasonCode, message: str, field: str | None = None) -> Reason:
    return Reason(code=code.value, message=message, field=field)


def _failed(reason: Reason) -> _Read[Any]:
    return _Read(None, [reason], {}, frozenset())


def _read(raw: bytes, model: type[M], max_bytes: int) -> _Read[M]:
    if len(raw) > max_bytes:
        return _failed(_reason(ReasonCode.TOO_LARGE,
                               f"the payload is {len(raw):,} bytes; the limit is "
                               f"{max_bytes:,} bytes (it was not read)"))
    if not raw.strip():
        return _failed(_reason(ReasonCode.INVALID_JSON,
                               "the payload is empty; expected a JSON object"))
    if raw.startswith(codecs.BOM_UTF8):
        return _failed(_reason(ReasonCode.INVALID_JSON,
                               "the payload starts with a byte-order mark; send plain UTF-8 JSON"))
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return _failed(_reason(ReasonCode.INVALID_JSON,
                               f"the payload is not UTF-8 text (byte 0x{raw[exc.start]:02x} at "
                               f"offset {exc.start})"))
    value: M | None
    try:
        value = model.model_validate_json(text)
        errors: list[ErrorDetails] = []
    except ValidationError as exc:
        value = None
        errors = exc.errors(include_url=False)
    for e in errors:
        if e["type"] == "json_invalid":
            return _failed(_json_reason(e))
        if not e["loc"]:
            return _failed(_reason(ReasonCode.INVALID_JSON,
                                   f"the payload must be a JSON object {{...}}, got "
                                   f"{_describe(e.get('input'))}"))
    reasons = [_field_reason(model, e) for e in errors]
    bad = {_dotted(e["loc"]) for e in errors}
    tree = _plain(text)
    for loc in _repeated_keys(tree):
        path = _dotted(loc)
        if not any(_dotted(loc[:n]) in bad for n in range(1, len(loc) + 1)):
            reasons.append(_reason(ReasonCode.INVALID_FIELD,
                                   f"{_show(path)} is sent more than once; send each field once",
                                   path))
            bad.add(path)
    return _Read(None if reasons else value, reasons, tree, frozenset(bad))


def _plain(text: str) -> dict[str, Any]:
    """The payload as Python's json reads it, to see repeated keys and the raw values."""
    try:
        tree = json.loads(text, object_pairs_hook=_Object)
    except (ValueError, RecursionError):  # pydantic read it, so this is a corner case
        return {}
    return tree if isinstance(tree, dict) else {}


def _repeated_keys(tree: Any) -> list[tuple[str | int, ...]]:
    """Where keys were sent twice, as paths; inside an unknown field too (the caller sorts
    those out)."""
    found: list[tuple[str | int, ...]] = []
    stack: list[tuple[tuple[str | int, ...], Any]] = [((), tree)]
    while stack:
        path, node = stack.pop()
        if isinstance(node, _Object):
            found += [(*path, k) for k in node.repeated]
            stack += [((*path, k), v) for k, v in node.items()]
        elif isinstance(node, list):
            stack += [((*path, i), v) for i, v in enumerate(node)]
    return sorted(found, key=_dotted)


# -- jobs and quote requests ------------------------------------------------------------------


def _parse_order(raw: bytes, store_id: str, now: datetime, max_bytes: int) -> Job | list[Reason]:
    if now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")
    read = _read(raw, Job, max_bytes)
    if read.value is None and not read.tree:  # not a JSON object: nothing more to check
        return _capped(read.reasons)
    reasons = read.reasons + _order_checks(read, store_id, now)
    if not reasons and read.value is not None:
        return read.value
    return _capped(reasons)


def _order_checks(read: _Read[Job], store_id: str, now: datetime) -> list[Reason]:
    """What the schema can't say: coordinates that look swapped, another store, the deadline."""
    reasons: list[Reason] = []
    job, tree = read.value, read.tree
    dest = tree.get("destination")
    if isinstance(dest, dict):
        lat, lon = dest.get("lat_deg"), dest.get("lon_deg")
        if (_is_number(lat) and _is_number(lon) and 90 < abs(lat) <= 180
                and abs(lon) <= 90):
            reasons.append(_reason(
                ReasonCode.LAT_LON_SWAPPED,
                f"destination looks swapped: lat_deg {lat!r} is outside -90..90 but would be "
                f"a valid longitude, and lon_deg {lon!r} would be a valid latitude",
                "destination"))
    sent_store = job.store_id if job is not None else tree.get("store_id")
    if "store_id" not in read.bad and isinstance(sent_store, str) and sent_store != store_id:
        reasons.append(_reason(
            ReasonCode.WRONG_STORE,
            f"store_id is {_show_value(sent_store)}, but this daemon serves store "
            f"{_show_value(store_id)}: correct store_id, or send the job to that store's topics",
            "store_id"))
    promised = job.promised_by if job is not None else _promised_by(read)
    if promised is not None and promised <= now:
        reasons.append(_reason(
            ReasonCode.DEADLINE_PASSED,
            f"promised_by {promised.isoformat()} is not in the future (now is "
            f"{now.isoformat()}): the deadline has passed",
            "promised_by"))
    return reasons


def _promised_by(read: _Read[Job]) -> datetime | None:
    value = read.tree.get("promised_by")
    if "promised_by" in read.bad or not isinstance(value, str):
        return None
    try:
        return _AWARE_DATETIME.validate_strings(value)
    except ValidationError:
        return None


def _capped(reasons: list[Reason]) -> list[Reason]:
    if len(reasons) <= MAX_REASONS:
        return reasons
    rest = reasons[MAX_REASONS - 1:]
    return [*reasons[:MAX_REASONS - 1],
            Reason(code=rest[0].code, message=f"and {len(rest)} more problems, not listed")]


# -- pydantic errors as plain English ---------------------------------------------------------


def _json_reason(error: ErrorDetails) -> Reason:
    ctx = error.get("ctx") or {}
    detail = str(ctx.get("error", error["msg"]))
    where = ""
    m = re.fullmatch(r"(.*) (at line \d+ column \d+)", detail)
    if m:
        detail, where = m.group(1), f" {m.group(2)}"
    if detail.startswith("EOF while parsing"):
        message = f"the JSON ends early{where}: is the payload truncated?"
    elif detail == "recursion limit exceeded":
        message = f"the JSON is nested too deeply{where}"
    elif detail == "number out of range":
        message = f"a number in the JSON is too long to read{where}"
    else:
        message = f"the payload is not valid JSON: {detail}{where}"
    return _reason(ReasonCode.INVALID_JSON, message)


def _field_reason(model: type[BaseModel], error: ErrorDetails) -> Reason:
    loc = error["loc"]
    path = _dotted(loc)
    kind = error["type"]
    if kind == "extra_forbidden":
        parent = _model_at(model, loc[:-1])
        known = list(parent.model_fields) if parent is not None else []
        close = difflib.get_close_matches(str(loc[-1]), known, n=1, cutoff=0.6)
        hint = (f" (did you mean {close[0]}?)" if close
                else f"; the fields here are {', '.join(known)}" if known else "")
        return _reason(ReasonCode.UNKNOWN_FIELD, f"{_show(path)} is not a known field{hint}",
                       path)
    info = _field_info(model, loc)
    expected = _expects(info, str(loc[-1])) if info is not None else None
    if kind == "missing":
        return _reason(ReasonCode.MISSING_FIELD,
                       f"{path} is required" + (f": {expected}" if expected else ""), path)
    got = error.get("input")
    if expected is None:
        return _reason(ReasonCode.INVALID_FIELD, f"{_show(path)}: {error['msg']}", path)
    message = f"{path} must be {expected}, got {_describe(got)}"
    if kind == "timezone_aware":
        message += ", which has no UTC offset"
    elif kind.startswith("datetime") and "ctx" in error and "error" in error["ctx"]:
        message += f" ({error['ctx']['error']})"
    elif kind == "float_type" and isinstance(got, str) and _looks_numeric(got):
        message += " (send the number without quotes)"
    return _reason(ReasonCode.INVALID_FIELD, message, path)


def _expects(info: FieldInfo, name: str) -> str:
    """What a field may hold, in words: 'a number from -90 to 90 degrees'."""
    annotation = _without_none(info.annotation)
    limits = {type(m): m for m in info.metadata}
    pattern = next((getattr(m, "pattern", None) for m in info.metadata
                    if getattr(m, "pattern", None)), None)
    sub = _model_in(annotation)
    if sub is not None:
        required = [n for n, f in sub.model_fields.items() if f.is_required()]
        return "an object" + (f" with {_and(required)}" if required else "")
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return "one of " + ", ".join(str(m.value) for m in annotation)
    if annotation is AwareDatetime or (isinstance(annotation, type)
                                       and issubclass(annotation, datetime)):
        return f"an RFC 3339 date-time with a UTC offset, such as {_EXAMPLE_TIME}"
    if annotation is bool:
        return "true or false"
    if annotation in (int, float):
        kind = "a whole number" if annotation is int else "a number"
        bounds = _bounds(limits)
        unit = _UNITS.get(name.rsplit("_", 1)[-1]) if "_" in name else None
        return " ".join(p for p in (kind, bounds, unit if bounds else None) if p)
    if annotation is str:
        if pattern is not None:
            return _PATTERN_RULES.get(pattern, f"a string matching {pattern}")
        max_len = limits.get(annotated_types.MaxLen)
        if isinstance(max_len, annotated_types.MaxLen):
            return f"a string of at most {max_len.max_length} characters"
        return "a string"
    return "a valid value"


def _bounds(limits: dict[type, Any]) -> str:
    ge, gt = limits.get(annotated_types.Ge), limits.get(annotated_types.Gt)
    le, lt = limits.get(annotated_types.Le), limits.get(annotated_types.Lt)
    if ge is not None and le is not None:
        return f"from {_num(ge.ge)} to {_num(le.le)}"
    low = (f"at least {_num(ge.ge)}" if ge is not None
           else f"more than {_num(gt.gt)}" if gt is not None else None)
    high = (f"at most {_num(le.le)}" if le is not None
            else f"less than {_num(lt.lt)}" if lt is not None else None)
    return " and ".join(p for p in (low, high) if p)


def _field_info(model: type[BaseModel], loc: tuple[str | int, ...]) -> FieldInfo | None:
    parent = _model_at(model, loc[:-1])
    if parent is None or not loc or not isinstance(loc[-1], str):
        return None
    return parent.model_fields.get(loc[-1])


def _model_at(model: type[BaseModel], loc: tuple[str | int, ...]) -> type[BaseModel] | None:
    current: type[BaseModel] | None = model
    for part in loc:
        if current is None or not isinstance(part, str) or part not in current.model_fields:
            return None
        current = _model_in(current.model_fields[part].annotation)
    return current


def _model_in(annotation: Any) -> type[BaseModel] | None:
    for t in (annotation, *get_args(annotation)):
        if isinstance(t, type) and issubclass(t, BaseModel):
            return t
    return None


def _without_none(annotation: Any) -> Any:
    args = [a for a in get_args(annotation) if a is not type(None)]
    return args[0] if len(args) == 1 else annotation


# -- small words ------------------------------------------------------------------------------


def _dotted(loc: tuple[str | int, ...]) -> str:
    return ".".join(str(p) for p in loc)


def _show(text: str) -> str:
    return text if len(text) <= SHOWN_CHARS else text[:SHOWN_CHARS] + "…"


def _show_value(text: str) -> str:
    return json.dumps(_show(text), ensure_ascii=False)


def _and(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _num(x: Any) -> str:
    return f"{x:g}" if isinstance(x, float) else str(x)


def _is_number(x: Any) -> TypeGuard[float]:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _looks_numeric(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _describe(value: Any) -> str:
    """A sent value as the sender wrote it, shortened: 'null', 'NaN', 'the string "1.2"'."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        # str() of a huge int is slow and can raise (sys.int_info.str_digits_check_threshold).
        if value.bit_length() <= 64:
            return str(value)
        return f"a number of about {int(value.bit_length() * math.log10(2)):,} digits"
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            sign = "-" if value < 0 else ""
            return f"{sign}Infinity (or a number too large to hold, such as {sign}1e400)"
        return repr(value)
    if isinstance(value, str):
        if len(value) > SHOWN_CHARS:
            return f"a string of {len(value)} characters"
        return f"the string {_show_value(value)}"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list | tuple):
        return "an array"
    return type(value).__name__
