"""Settings: one typed object, built from the environment."""

from __future__ import annotations

import os
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec
import platformdirs

DEFAULT_TIMEZONE = "America/Los_Angeles"


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
    timezone: str = DEFAULT_TIMEZONE
    """`REWARDS_TIMEZONE`: the program's time zone (IANA name); report periods are whole days in it."""


def _int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    return default if raw in (None, "") else int(raw)


def load_settings() -> Settings:
    pool_size = _int("REWARDS_POOL_SIZE", 10)
    if pool_size < 2:
        raise ValueError("REWARDS_POOL_SIZE must be at least 2: a report reads on two connections at once")
    timezone = os.environ.get("REWARDS_TIMEZONE") or DEFAULT_TIMEZONE
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"REWARDS_TIMEZONE {timezone!r} is not a time zone name such as America/Los_Angeles") from exc
    data_dir = os.environ.get("REWARDS_DATA_DIR") or platformdirs.user_data_dir("westique-rewards")
    return Settings(
        database_url=os.environ.get("DATABASE_URL") or None,
        data_dir=Path(data_dir),
        host=os.environ.get("REWARDS_HOST", "127.0.0.1"),
        port=_int("REWARDS_PORT", 8000),
        pool_size=pool_size,
        guest_rate_limit=_int("REWARDS_GUEST_RATE_LIMIT", 120),
        max_body_bytes=_int("REWARDS_MAX_BODY_BYTES", 256 * 1024),
        timezone=timezone,
    )
