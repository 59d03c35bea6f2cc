"""Pure rules that storage and bounce handling share (SPEC §6 and the activation rule).

They live here, in a leaf module, so that there is one copy of each: the
registry's contact ledger counts bounces with ``count_bounce``, the inbox
scanner and the planner read the policy through ``effective_bounce_policy``,
and plan decides activation with ``needs_activation``. Nothing here does I/O:
values in, values out.

The soft-bounce rule: a hard bounce or a complaint makes the contact faulty at
once; a blocked bounce is the sender's problem (reputation, policy), not the
contact's, and changes nothing; soft bounces are kept with their time, those
older than the window are forgotten, and reaching the limit inside the window
makes the contact faulty.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Callable, Mapping, Optional, Sequence

from .model import DEFAULT_BOUNCE_POLICY

# More contacts than this on the platform and a new marketing account waits for
# an operator's activation: a mistake would reach many people at once.
ACTIVATION_CONTACT_LIMIT = 1000

DEFAULT_SOFT_BOUNCE_LIMIT: int = DEFAULT_BOUNCE_POLICY["soft_bounce_limit"]
DEFAULT_SOFT_BOUNCE_WINDOW_DAYS: int = DEFAULT_BOUNCE_POLICY["soft_bounce_window_days"]

FAULTY_AT_ONCE = frozenset({"hard", "complaint"})
NOT_THE_CONTACTS_FAULT = frozenset({"blocked"})


def needs_activation(contact_count: int) -> bool:
    """Whether a new marketing account must wait for an operator (strictly more than
    ``ACTIVATION_CONTACT_LIMIT`` contacts)."""
    return contact_count > ACTIVATION_CONTACT_LIMIT


def effective_bounce_policy(stored: Optional[Mapping[str, Any]]) -> dict:
    """The policy in force: the model's defaults, overridden by what is stored or
    declared (a partial or missing policy leaves the defaults in place)."""
    return {**DEFAULT_BOUNCE_POLICY, **(stored or {})}


@dataclass(frozen=True)
class SoftBounce:
    """One soft bounce remembered against a contact."""

    time: datetime
    status: Optional[str] = None      # the enhanced status code, e.g. 4.2.2
    account: str = ""                 # the account whose inbox reported it


@dataclass(frozen=True)
class Bounce:
    """A new bounce for one contact, as the classifier and the scanner report it."""

    kind: str                         # hard | soft | blocked | complaint
    time: datetime
    status: Optional[str] = None
    account: str = ""


@dataclass(frozen=True)
class BounceOutcome:
    """What a bounce does to a contact.

    ``counts`` is False when the bounce is not the contact's affair at all (blocked):
    then nothing about the contact is written, not even its last bounce.
    ``faulty`` is True when this bounce makes the contact faulty; False leaves its
    status as it was (a contact already faulty stays so).
    """

    soft_bounces: tuple[SoftBounce, ...]
    faulty: bool
    counts: bool = True


def count_bounce(history: Sequence[SoftBounce], bounce: Bounce,
                 limit: int = DEFAULT_SOFT_BOUNCE_LIMIT,
                 window_days: int = DEFAULT_SOFT_BOUNCE_WINDOW_DAYS) -> BounceOutcome:
    """Apply one bounce to a contact's soft-bounce history (see the module docstring)."""
    if bounce.kind in NOT_THE_CONTACTS_FAULT:
        return BounceOutcome(tuple(history), faulty=False, counts=False)
    if bounce.kind in FAULTY_AT_ONCE:
        return BounceOutcome(tuple(history), faulty=True)
    if bounce.kind != "soft":
        return BounceOutcome(tuple(history), faulty=False)   # recorded as last bounce only
    new = SoftBounce(bounce.time, bounce.status, bounce.account)
    recent = within_window([*history, new], bounce.time, window_days)
    return BounceOutcome(recent, faulty=len(recent) >= limit)


def within_window(history: Sequence[SoftBounce], end: datetime,
                  window_days: int) -> tuple[SoftBounce, ...]:
    """The soft bounces younger than ``window_days`` at ``end``: one exactly as old as
    the window has left it; later ones (an out-of-order report) are kept."""
    start = end - timedelta(days=window_days)
    return tuple(b for b in history if b.time > start)


# --- ownership: which project manages an account of a shared registry ---------------
# An account's recorded owner is a project's ownership.name; None when no project was
# recorded (made before ownership, or by a project without it); RELEASED once `state rm`
# or a Removed document let it go: then no project manages it until one adopts it.
RELEASED = ""


def manages(ownership: Optional[str], owner: Optional[str]) -> bool:
    """Whether a project (``ownership``: its ownership.name, None without one) manages an
    account recorded with ``owner``: its own; without ownership, every one not let go."""
    if owner == RELEASED:
        return False
    return ownership is None or owner == ownership


# --- tags of the mail mailform sends (SECURITY.md, "Bounces that can be trusted") -----------
# The registry (which re-keys them) and the scanner (which checks them) share this rule.
TAG_PURPOSE = "bounce tag"
TAG_MAC_LENGTH = 32               # hex digits: 128 bits of HMAC-SHA256


def tag_mac(tag_id: str, sign: Callable[[str, bytes], str]) -> str:
    """A tag's MAC under the key behind ``sign`` (``registry.sign`` / ``KeyRing.sign``)."""
    return sign(TAG_PURPOSE, tag_id.encode("ascii")).partition(":")[2][:TAG_MAC_LENGTH]
