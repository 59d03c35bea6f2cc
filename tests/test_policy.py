"""The pure rules in reconciler.policy: bounce kinds, the soft-bounce window and limit,
the effective bounce policy, the activation threshold. No registry, no I/O."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from reconciler import policy
from reconciler.model import DEFAULT_BOUNCE_POLICY
from reconciler.policy import Bounce, SoftBounce, count_bounce

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)


def soft(days_ago: float, status: str = "4.2.2") -> SoftBounce:
    return SoftBounce(NOW - timedelta(days=days_ago), status, "news")


def bounce(kind: str, status: str | None = "4.2.2") -> Bounce:
    return Bounce(kind, NOW, status, "news")


# -- kinds -------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["hard", "complaint"])
def test_hard_and_complaint_are_faulty_at_once_and_keep_the_history(kind):
    history = (soft(1),)
    outcome = count_bounce(history, bounce(kind, "5.1.1"), limit=3, window_days=30)
    assert outcome.faulty and outcome.counts
    assert outcome.soft_bounces == history


def test_blocked_changes_nothing():
    history = (soft(1), soft(2))
    outcome = count_bounce(history, bounce("blocked", "5.7.1"), limit=1, window_days=30)
    assert not outcome.faulty and not outcome.counts
    assert outcome.soft_bounces == history


def test_an_unknown_kind_is_recorded_but_counts_towards_nothing():
    outcome = count_bounce((soft(1),), bounce("delayed"), limit=1, window_days=30)
    assert outcome.counts and not outcome.faulty
    assert outcome.soft_bounces == (soft(1),)


# -- soft: limit ------------------------------------------------------------------------

def test_soft_below_the_limit_is_remembered():
    outcome = count_bounce((soft(2),), bounce("soft", "4.2.2"), limit=3, window_days=30)
    assert not outcome.faulty and outcome.counts
    assert outcome.soft_bounces == (soft(2), SoftBounce(NOW, "4.2.2", "news"))


def test_soft_reaching_the_limit_is_faulty():
    outcome = count_bounce((soft(2), soft(1)), bounce("soft"), limit=3, window_days=30)
    assert outcome.faulty and len(outcome.soft_bounces) == 3


def test_a_limit_of_one_makes_the_first_soft_bounce_faulty():
    assert count_bounce((), bounce("soft"), limit=1, window_days=30).faulty


def test_beyond_the_limit_stays_faulty():
    history = tuple(soft(d) for d in (4, 3, 2, 1))
    assert count_bounce(history, bounce("soft"), limit=3, window_days=30).faulty


# -- soft: window edges -------------------------------------------------------------------

def test_bounces_older_than_the_window_are_forgotten():
    history = (soft(45), soft(31), soft(2))
    outcome = count_bounce(history, bounce("soft"), limit=3, window_days=30)
    assert not outcome.faulty
    assert outcome.soft_bounces == (soft(2), SoftBounce(NOW, "4.2.2", "news"))


def test_a_bounce_exactly_one_window_old_has_left_it():
    outcome = count_bounce((soft(30), soft(1)), bounce("soft"), limit=3, window_days=30)
    assert not outcome.faulty and soft(30) not in outcome.soft_bounces


def test_a_bounce_just_inside_the_window_counts():
    just_inside = SoftBounce(NOW - timedelta(days=30) + timedelta(milliseconds=1))
    outcome = count_bounce((just_inside, soft(1)), bounce("soft"), limit=3, window_days=30)
    assert outcome.faulty and just_inside in outcome.soft_bounces


def test_a_one_day_window():
    outcome = count_bounce((soft(0.5), soft(1.5)), bounce("soft"), limit=2, window_days=1)
    assert outcome.faulty and soft(1.5) not in outcome.soft_bounces


def test_a_later_bounce_reported_out_of_order_is_kept():
    later = SoftBounce(NOW + timedelta(days=2))
    outcome = count_bounce((later,), bounce("soft"), limit=2, window_days=30)
    assert outcome.faulty and later in outcome.soft_bounces


def test_the_window_ends_at_the_new_bounce_not_at_the_clock():
    old = Bounce("soft", NOW - timedelta(days=400), None, "news")
    history = (SoftBounce(NOW - timedelta(days=410)),)
    outcome = count_bounce(history, old, limit=2, window_days=30)
    assert outcome.faulty


def test_defaults_come_from_the_model():
    assert policy.DEFAULT_SOFT_BOUNCE_LIMIT == DEFAULT_BOUNCE_POLICY["soft_bounce_limit"]
    assert (policy.DEFAULT_SOFT_BOUNCE_WINDOW_DAYS
            == DEFAULT_BOUNCE_POLICY["soft_bounce_window_days"])
    history = tuple(soft(d) for d in range(1, policy.DEFAULT_SOFT_BOUNCE_LIMIT))
    assert count_bounce(history, bounce("soft")).faulty
    assert not count_bounce(history[1:], bounce("soft")).faulty


# -- effective policy and activation ----------------------------------------------------

def test_effective_bounce_policy_merges_the_stored_one_over_the_defaults():
    assert policy.effective_bounce_policy(None) == DEFAULT_BOUNCE_POLICY
    assert policy.effective_bounce_policy({}) == DEFAULT_BOUNCE_POLICY
    merged = policy.effective_bounce_policy({"soft_bounce_limit": 5})
    assert merged == {**DEFAULT_BOUNCE_POLICY, "soft_bounce_limit": 5}
    assert DEFAULT_BOUNCE_POLICY["soft_bounce_limit"] != 5      # the default is untouched


@pytest.mark.parametrize("count, expected", [(0, False), (999, False), (1000, False),
                                             (1001, True), (50_000, True)])
def test_activation_is_needed_above_the_limit(count, expected):
    assert policy.ACTIVATION_CONTACT_LIMIT == 1000
    assert policy.needs_activation(count) is expected
