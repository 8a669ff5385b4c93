"""Retention over a simulated calendar: two series, missed days, weekly-only stretches, holds.

The rules are those written in docs/measures/availability-control.md; the plan is
a pure function of the backups and their explicit creation times, so 60 days are
simulated here without a clock.
"""

from __future__ import annotations

import datetime as dt

import pytest

from strongroom.backup.retention import BackupInfo, plan_retention

START = dt.date(2026, 1, 1)  # a Thursday
SUNDAY = 6
MISSED = set(range(20, 23))  # the server was down: no backup at all on days 20-22
WEEKLY_ONLY = range(40, 60)  # daily backups stopped; weekly ones go on


def _at(day: int, kind: str) -> BackupInfo:
    date = START + dt.timedelta(days=day)
    # Weekly backups are taken a minute after the daily one on the same day.
    moment = dt.datetime(date.year, date.month, date.day, 2, 1 if kind == "weekly" else 0,
                         tzinfo=dt.UTC)
    return BackupInfo(f"{moment:%Y%m%dT%H%M%SZ}-{kind}-{day:06x}", kind, moment)


def _day_of(backup_id: str) -> int:
    return int(backup_id.rsplit("-", 1)[1], 16)


def _simulate(days: int, held_day: int | None = None) -> dict[int, set[str]]:
    """Run each day's backups and a prune; return the surviving ids after every day."""
    alive: dict[str, BackupInfo] = {}
    history = {}
    for day in range(days):
        if day not in MISSED:
            date = START + dt.timedelta(days=day)
            kinds = [] if day in WEEKLY_ONLY else ["daily"]
            if date.weekday() == SUNDAY:
                kinds.append("weekly")
            for kind in kinds:
                info = _at(day, kind)
                alive[info.backup_id] = info
        if held_day is not None:
            alive = {k: BackupInfo(v.backup_id, v.kind, v.created_at,
                                   held=(_day_of(k) == held_day and v.kind == "daily"))
                     for k, v in alive.items()}
        plan = plan_retention(alive.values(), daily_keep=3, weekly_keep=4)
        assert set(plan.prune) | {k for k, _ in plan.keep} == set(alive), "plan covers all"
        assert not set(plan.prune) & {k for k, _ in plan.keep}
        for backup_id in plan.prune:
            del alive[backup_id]
        history[day] = set(alive)
    return history


def _days(ids: set[str], kind: str) -> list[int]:
    return sorted(_day_of(i) for i in ids if f"-{kind}-" in i)


def _sundays_up_to(day: int) -> list[int]:
    return [d for d in range(day + 1)
            if (START + dt.timedelta(days=d)).weekday() == SUNDAY and d not in MISSED]


def test_sixty_days_match_the_documented_rules() -> None:
    history = _simulate(60)
    for day, alive in history.items():
        dailies = [d for d in range(day + 1) if d not in MISSED and d not in WEEKLY_ONLY]
        # Rule 2: the newest 3 daily backups that exist, however old (count, not age).
        assert _days(alive, "daily") == dailies[-3:], f"day {day}"
        # Rule 1: weekly backups are their own series of 4.
        assert _days(alive, "weekly") == _sundays_up_to(day)[-4:], f"day {day}"


def test_first_days_keep_everything_until_a_series_is_full() -> None:
    history = _simulate(4)
    assert _days(history[0], "daily") == [0]
    assert _days(history[2], "daily") == [0, 1, 2]
    assert _days(history[2], "weekly") == []
    assert _days(history[3], "weekly") == [3]  # 2026-01-04, day 3, is a Sunday


def test_missed_days_prune_nothing() -> None:
    history = _simulate(24)
    assert _days(history[19], "daily") == [17, 18, 19]
    # Days 20-22 had no backup: the same three stay, three and more days old by now.
    for day in MISSED:
        assert history[day] == history[19]
    # The first backup after the gap pushes out only the oldest one.
    assert _days(history[23], "daily") == [18, 19, 23]


def test_weekly_only_stretch_keeps_the_last_three_dailies() -> None:
    history = _simulate(60)
    # Daily backups stopped after day 39; twenty days later the last three remain.
    assert _days(history[59], "daily") == [37, 38, 39]
    assert _days(history[59], "weekly") == [38, 45, 52, 59]
    assert len(history[59]) == 7


def test_a_weekly_backup_never_counts_as_a_daily_one() -> None:
    # Day 3 (a Sunday) has both kinds; the weekly one must not take a daily slot.
    history = _simulate(6)
    assert _days(history[3], "daily") == [1, 2, 3]
    assert _days(history[5], "daily") == [3, 4, 5]
    assert _days(history[5], "weekly") == [3]


def test_a_held_backup_survives_and_does_not_count() -> None:
    history = _simulate(60, held_day=5)
    for day in range(5, 60):
        assert 5 in _days(history[day], "daily"), f"held backup pruned on day {day}"
    dailies = [d for d in range(60) if d not in MISSED and d not in WEEKLY_ONLY]
    assert _days(history[59], "daily") == [5, *dailies[-3:]]


def test_held_backups_are_named_in_the_plan() -> None:
    moment = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    backups = [BackupInfo(f"b{i}", "daily", moment + dt.timedelta(days=i), held=i == 0)
               for i in range(6)]
    plan = plan_retention(backups, daily_keep=3, weekly_keep=4)
    assert ("b0", "held") in plan.keep
    assert plan.prune == ("b1", "b2")


@pytest.mark.parametrize(("daily", "weekly"), [(0, 4), (3, 0)])
def test_a_series_keeps_at_least_one(daily: int, weekly: int) -> None:
    with pytest.raises(ValueError, match="at least one"):
        plan_retention([], daily_keep=daily, weekly_keep=weekly)
