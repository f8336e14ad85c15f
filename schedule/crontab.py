"""Standard 5-field crontab expressions for APScheduler 3.

APScheduler 3's CronTrigger.from_crontab reads numeric days of the week with
Monday as 0, while crontab means Sunday by 0 (and 7): `0 3 * * 1` would run on
Tuesdays. Numeric days are rewritten as names first."""

from __future__ import annotations

import datetime as dt
import re

from apscheduler.triggers.cron import CronTrigger

from nettrail.errors import UsageError

DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
_NUMERIC_PART = re.compile(r"^(\*|\d+)(?:-(\d+))?(?:/(\d+))?$")


def _day_names(field: str) -> str:
    """Crontab numeric day-of-week → explicit day names; names pass through."""
    if field == "*":
        return field
    days: list[int] = []
    for part in field.split(","):
        m = _NUMERIC_PART.match(part)
        if not m:
            return field  # names (mon-fri) mean the same to both: leave as is
        start, end, step = m.groups()
        low = 0 if start == "*" else int(start)
        high = 6 if start == "*" else int(end) if end else (low if not step else 7)
        if not 0 <= low <= high <= 7:
            raise UsageError(f"bad day of week {part!r} in crontab expression",
                             "use 0-7 (0 and 7 are Sunday) or names like mon-fri")
        days += [d % 7 for d in range(low, high + 1, int(step or 1))]
    return ",".join(DAYS[d] for d in sorted(set(days)))


def crontab_trigger(expression: str, utc: bool, second: str | None = None) -> CronTrigger:
    """A trigger for a crontab expression in the host's time zone (or UTC)."""
    fields = expression.split()
    if len(fields) == 5:
        fields[4] = _day_names(fields[4])
    timezone = dt.timezone.utc if utc else dt.datetime.now().astimezone().tzinfo
    try:
        trigger = CronTrigger.from_crontab(" ".join(fields), timezone=timezone)
        if second is not None:  # tests only: a seconds-level schedule
            minute, hour, day, month, day_of_week = fields
            trigger = CronTrigger(second=second, minute=minute, hour=hour, day=day,
                                  month=month, day_of_week=day_of_week, timezone=timezone)
    except ValueError as exc:
        raise UsageError(f"bad crontab expression {expression!r}: {exc}",
                         'use 5 fields, e.g. "*/15 * * * *"') from None
    if trigger.get_next_fire_time(None, dt.datetime.now(timezone)) is None:
        raise UsageError(f"crontab expression {expression!r} never fires (no such date)",
                         "check the day of month against the month")
    return trigger
