"""In-flight policy: one action from the monitor's safety flags, by a table of named rules."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum

from nestd.safety.errors import SafetyInputError


class Action(IntEnum):
    """What to do, ordered by severity: the policy picks the most severe triggered one."""

    CONTINUE = 0
    WARN = 1
    HOLD = 2
    REROUTE = 3
    RETURN = 4
    LAND_AT_SAFE_SITE = 5
    LAND_NOW = 6


@dataclass(frozen=True, slots=True)
class SafetyFlags:
    """What the checkers found this tick; every field is one rule's trigger."""

    geofence_breach_predicted: bool = False
    geofence_breached: bool = False
    energy_to_finish_below_reserve: bool = False
    energy_to_home_below_reserve: bool = False
    wind_over_limit: bool = False
    link_degraded: bool = False
    link_lost: bool = False
    gps_degraded: bool = False
    gps_lost: bool = False
    stalled: bool = False
    off_corridor: bool = False
    battery_anomaly: bool = False

    def raised(self) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(self) if getattr(self, f.name))


FLAG_NAMES = tuple(f.name for f in dataclasses.fields(SafetyFlags))


@dataclass(frozen=True, slots=True)
class Rule:
    flag: str
    action: Action
    why: str
    escalate_after_s: float | None = None
    escalate_to: Action | None = None


# Read top to bottom like PX4's failsafe table. Wind alone only warns: the energy flags,
# recomputed with the live wind, decide whether the flight can go on.
DEFAULT_RULES: tuple[Rule, ...] = (
    Rule("wind_over_limit", Action.WARN, "energy checks decide if the flight can go on"),
    Rule("link_degraded", Action.WARN, "the vehicle's own link-loss failsafe is armed"),
    Rule("geofence_breach_predicted", Action.HOLD, "stop short of the fence", 10.0, Action.RETURN),
    Rule("stalled", Action.HOLD, "no progress along the route", 30.0, Action.RETURN),
    Rule("off_corridor", Action.HOLD, "outside the planned corridor", 10.0, Action.RETURN),
    Rule("energy_to_finish_below_reserve", Action.RETURN, "can't finish with the reserve"),
    Rule("gps_degraded", Action.RETURN, "position is getting worse"),
    Rule("link_lost", Action.RETURN, "what the vehicle's own failsafe should be doing"),
    Rule("geofence_breached", Action.RETURN, "outside the legal volume"),
    Rule("energy_to_home_below_reserve", Action.LAND_AT_SAFE_SITE, "can't reach home"),
    Rule("battery_anomaly", Action.LAND_AT_SAFE_SITE, "battery voltage or temperature"),
    Rule("gps_lost", Action.LAND_NOW, "no position to navigate by"),
)


@dataclass(frozen=True, slots=True)
class Decision:
    time_s: float
    action: Action
    rule: str
    """The deciding rule's flag, or "" for CONTINUE."""
    reason: str
    flags: tuple[str, ...]
    follow_autopilot: bool = False
    """The vehicle already does this (its own failsafe): send nothing, don't fight it."""


class Policy:
    """Flags in, one action out; keeps the small state escalation and hysteresis need.

    A rule holds for `clear_after_s` after its flag drops, so a flag flickering at a threshold
    doesn't flap the action. Actions from RETURN up latch for the rest of the flight: once
    the drone turns for home it doesn't turn back because a number recovered.
    """

    def __init__(
        self,
        rules: Sequence[Rule] = DEFAULT_RULES,
        *,
        clear_after_s: float = 5.0,
        latch_from: Action = Action.RETURN,
    ) -> None:
        for r in rules:
            if r.flag not in FLAG_NAMES:
                raise SafetyInputError(f"rule on unknown flag {r.flag!r}")
            if (r.escalate_after_s is None) != (r.escalate_to is None):
                raise SafetyInputError(f"rule {r.flag!r}: escalation needs a time and an action")
        self.rules = tuple(rules)
        self.clear_after_s = clear_after_s
        self.latch_from = latch_from
        self._raised_at: dict[str, float] = {}  # flag -> when it went up (kept while held)
        self._down_since: dict[str, float] = {}  # first tick a held flag was seen down
        self._latched: Decision | None = None

    def update(
        self, now_s: float, flags: SafetyFlags, autopilot_action: Action | None = None
    ) -> Decision:
        """Decide at `now_s`.

        `autopilot_action` is what the vehicle does on its own when a failsafe of its own took
        over (an RTL or LAND mode it entered behind our back), else None.
        """
        up = set(flags.raised())
        for f in up:
            self._raised_at.setdefault(f, now_s)
            self._down_since.pop(f, None)
        for f in list(self._raised_at):
            if f not in up and now_s - self._down_since.setdefault(f, now_s) >= self.clear_after_s:
                del self._raised_at[f]
                del self._down_since[f]

        best: tuple[Action, str, str] = (Action.CONTINUE, "", "all clear")
        for r in self.rules:
            since = self._raised_at.get(r.flag)
            if since is None:
                continue
            action, reason = r.action, r.why
            held_s = now_s - since
            if (
                r.escalate_after_s is not None
                and r.escalate_to is not None
                and held_s >= r.escalate_after_s
            ):
                action = r.escalate_to
                reason = f"{r.why} for {held_s:.0f} s (limit {r.escalate_after_s:.0f} s)"
            if action > best[0]:
                best = (action, r.flag, reason)

        action, rule, reason = best
        if self._latched is not None and self._latched.action >= action:
            action, rule = self._latched.action, self._latched.rule
            reason = f"latched: {self._latched.reason}"
        # Only a vehicle doing at least what we would is followed; a milder failsafe (RTL when
        # home is out of reach) is overridden.
        follow = autopilot_action is not None and autopilot_action >= action
        if follow and autopilot_action is not None:
            action = autopilot_action
            reason = f"the vehicle's own failsafe already does {action.name}; {reason}"
        decision = Decision(now_s, action, rule, reason, tuple(sorted(up)), follow)
        if action >= self.latch_from and (self._latched is None or action > self._latched.action):
            self._latched = decision
        return decision
