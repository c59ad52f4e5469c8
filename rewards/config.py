"""Settings: one typed object, built from the environment."""

from __future__ import annotations

import os
import re
from datetime import timedelta
from pathlib import Path

import msgspec
import platformdirs


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    database_url: str | None = None
    """`DATABASE_URL`: a PostgreSQL URL. Unset: an embedded PostgreSQL under `data_dir`."""
    data_dir: Path
    """`REWARDS_DATA_DIR`: where the embedded PostgreSQL keeps its data (default: a per-user data folder)."""
    host: str = "127.0.0.1"
    """`REWARDS_HOST`: the address `rewards serve` listens on."""
    port: int = 8000
    """`REWARDS_PORT`: the port `rewards serve` listens on."""
    pool_size: int = 10
    """`REWARDS_POOL_SIZE`: database connections per worker process (at least 2)."""
    guest_rate_limit: int = 120
    """`REWARDS_GUEST_RATE_LIMIT`: requests a guest token may make per minute (per worker)."""
    max_body_bytes: int = 256 * 1024
    """`REWARDS_MAX_BODY_BYTES`: larger request bodies are refused with 413."""
    max_backdate: timedelta = timedelta(days=7)
    """`REWARDS_MAX_BACKDATE` (`7d`, `36h`, `90m`): how old a live posting's `occurred_at` may be;
    older history comes in through `rewards import purchases --history`."""
    max_purchase_cents: int = 5_000_000
    """`REWARDS_MAX_PURCHASE_CENTS`: the most a purchase may total ($50,000 by default), so one
    request cannot issue thousands of rewards."""


def _int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    return default if raw in (None, "") else int(raw)


_DURATION = re.compile(r"^\s*([0-9]+)\s*([dhms])\s*$")
_UNITS = {"d": "days", "h": "hours", "m": "minutes", "s": "seconds"}


def parse_duration(text: str) -> timedelta:
    """`30d`, `36h`, `90m` or `45s` as a timedelta."""
    match = _DURATION.match(text)
    if match is None:
        raise ValueError(f"{text!r} is not a duration such as 7d, 36h, 90m or 45s")
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


def _duration(name: str, default: timedelta) -> timedelta:
    raw = os.environ.get(name)
    return default if raw in (None, "") else parse_duration(raw)


def load_settings() -> Settings:
    pool_size = _int("REWARDS_POOL_SIZE", 10)
    if pool_size < 2:
        raise ValueError("REWARDS_POOL_SIZE must be at least 2: a report reads on two connections at once")
    data_dir = os.environ.get("REWARDS_DATA_DIR") or platformdirs.user_data_dir("westique-rewards")
    return Settings(
        database_url=os.environ.get("DATABASE_URL") or None,
        data_dir=Path(data_dir),
        host=os.environ.get("REWARDS_HOST", "127.0.0.1"),
        port=_int("REWARDS_PORT", 8000),
        pool_size=pool_size,
        guest_rate_limit=_int("REWARDS_GUEST_RATE_LIMIT", 120),
        max_body_bytes=_int("REWARDS_MAX_BODY_BYTES", 256 * 1024),
        max_backdate=_duration("REWARDS_MAX_BACKDATE", timedelta(days=7)),
        max_purchase_cents=_int("REWARDS_MAX_PURCHASE_CENTS", 5_000_000),
    )
