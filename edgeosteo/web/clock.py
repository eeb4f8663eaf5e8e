"""Times as people at the box read them: in the box's time zone (``[web] time_zone``, else
the system's), while the store keeps UTC."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta, tzinfo
from zoneinfo import ZoneInfo


def zone(name: str) -> tzinfo | None:
    """The configured zone; None means the system's (``datetime.astimezone()`` with no
    argument follows its rules, summer time included)."""
    return ZoneInfo(name) if name else None


def local(stamp: str, where: tzinfo | None) -> datetime:
    """A stored UTC timestamp (ISO) in the box's zone."""
    moment = datetime.fromisoformat(stamp)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(where)


def local_text(stamp: str | None, where: tzinfo | None, seconds: bool = False) -> str:
    """ "2026-12-03 11:10" (with seconds, "2026-12-03 11:10:05"); "" for no or a bad stamp."""
    if not stamp:
        return ""
    try:
        moment = local(stamp, where)
    except ValueError:
        return stamp
    return moment.strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")


def zone_label(stamp: str | None, where: tzinfo | None) -> str:
    """The zone a time is shown in as its offset, "UTC+8" or "UTC+5:30" ("UTC" at zero)."""
    moment = local(stamp, where) if stamp else datetime.now(UTC).astimezone(where)
    offset = moment.utcoffset() or timedelta(0)
    minutes = int(offset.total_seconds() // 60)
    if minutes == 0:
        return "UTC"
    sign = "+" if minutes > 0 else "-"
    hours, rest = divmod(abs(minutes), 60)
    return f"UTC{sign}{hours}" + (f":{rest:02d}" if rest else "")


def today(where: tzinfo | None) -> date:
    return datetime.now(UTC).astimezone(where).date()


def day_bounds(day: str, where: tzinfo | None) -> tuple[str, str]:
    """A local day as the UTC timestamps (stored form) it starts and ends at."""
    first = date.fromisoformat(day)

    def start(d: date) -> str:
        midnight = datetime.combine(d, time(0))
        moment = midnight.replace(tzinfo=where) if where else midnight.astimezone()
        return moment.astimezone(UTC).isoformat(timespec="seconds")

    return start(first), start(first + timedelta(days=1))
