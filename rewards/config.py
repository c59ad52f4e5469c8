"""Settings: one typed object, built from the environment."""

from __future__ import annotations

import contextlib
import logging
import os
import re
import secrets
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec
import platformdirs

log = logging.getLogger("rewards")
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
    max_backdate: timedelta = timedelta(days=7)
    """`REWARDS_MAX_BACKDATE` (`7d`, `36h`, `90m`): how old a live posting's `occurred_at` may be;
    older history comes in through `rewards import purchases --history`."""
    max_purchase_cents: int = 5_000_000
    """`REWARDS_MAX_PURCHASE_CENTS`: the most a purchase may total ($50,000 by default), so one
    request cannot issue thousands of rewards."""
    secret_key: str | None = None
    """`REWARDS_SECRET_KEY`: signs the unsubscribe links (at least 32 characters). Unset: one is
    generated on first use and kept in `data_dir/secret_key` (see `secret_key()`)."""
    public_url: str = "http://127.0.0.1:8000"
    """`REWARDS_PUBLIC_URL`: the address guests, mailbox providers and Twilio reach the service at,
    without a trailing slash (default: `http://` with the host and port). Links are built from
    it and Twilio's signatures are checked against it, so behind a proxy it is the proxy's."""
    twilio_auth_token: str | None = None
    """`REWARDS_TWILIO_AUTH_TOKEN`: the Twilio account's auth token, which signs its webhooks.
    Unset: `POST /v1/sms/inbound/twilio` refuses every request (403)."""
    guest_services_phone: str = "1-800-555-0199"
    """`REWARDS_GUEST_SERVICES_PHONE`: the number the HELP text gives for Guest Services."""
    guest_services_email: str = "guestservices@westique.example"
    """`REWARDS_GUEST_SERVICES_EMAIL`: the address the HELP text gives for Guest Services."""
    timezone: str = DEFAULT_TIMEZONE
    """`REWARDS_TIMEZONE`: the program's time zone (IANA name); report periods are whole days in it."""
    erasure_notice_hours: int = 24
    """`REWARDS_ERASURE_NOTICE_HOURS`: how long after it is asked for a member's erasure happens, so
    the guest is told first and can still use their rewards (Colorado 4 CCR 904-3 Rule 6.05(E));
    0 erases at once."""
    jobs: bool = True
    """`REWARDS_JOBS` (`on`, `off`): whether `rewards serve` runs the background jobs (webhook
    delivery, reward expiry) beside its workers; off where `rewards jobs run` runs them instead."""
    expiry_notice: timedelta = timedelta(days=7)
    """`REWARDS_EXPIRY_NOTICE`: how long before a reward expires its `reward.expiring` event is written."""
    expiry_interval: timedelta = timedelta(hours=1)
    """`REWARDS_EXPIRY_INTERVAL`: a reward past its expiry gets its `reward_expired` entry within this
    long (the job runs four times as often); `rewards verify` reports one left longer."""
    webhook_timeout: timedelta = timedelta(seconds=10)
    """`REWARDS_WEBHOOK_TIMEOUT`: how long a webhook endpoint has to answer a delivery."""
    webhook_concurrency: int = 16
    """`REWARDS_WEBHOOK_CONCURRENCY`: deliveries under way at once (at most half of them to one webhook)."""


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


def _bool(name: str, default: bool) -> bool:
    raw = (os.environ.get(name) or "").strip().lower()
    if not raw:
        return default
    if raw in ("on", "true", "1", "yes"):
        return True
    if raw in ("off", "false", "0", "no"):
        return False
    raise ValueError(f"{name} is on or off, not {raw!r}")
def _public_url(host: str, port: int) -> str:
    raw = os.environ.get("REWARDS_PUBLIC_URL", "").strip()
    if not raw:
        # a wildcard address is where to listen, not where to be reached
        reachable = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host  # noqa: S104
        return f"http://{f'[{reachable}]' if ':' in reachable else reachable}:{port}"
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
        raise ValueError(f"REWARDS_PUBLIC_URL must be an http(s) URL such as https://rewards.example.com, not {raw!r}")
    return raw.rstrip("/")


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
    key = os.environ.get("REWARDS_SECRET_KEY") or None
    if key is not None and len(key) < MIN_SECRET_KEY_LENGTH:
        raise ValueError(f"REWARDS_SECRET_KEY must be at least {MIN_SECRET_KEY_LENGTH} characters long")
    host, port = os.environ.get("REWARDS_HOST", "127.0.0.1"), _int("REWARDS_PORT", 8000)
    return Settings(
        database_url=os.environ.get("DATABASE_URL") or None,
        data_dir=Path(data_dir),
        host=host,
        port=port,
        pool_size=pool_size,
        guest_rate_limit=_int("REWARDS_GUEST_RATE_LIMIT", 120),
        max_body_bytes=_int("REWARDS_MAX_BODY_BYTES", 256 * 1024),
        max_backdate=_duration("REWARDS_MAX_BACKDATE", timedelta(days=7)),
        max_purchase_cents=_int("REWARDS_MAX_PURCHASE_CENTS", 5_000_000),
        secret_key=key,
        public_url=_public_url(host, port),
        twilio_auth_token=os.environ.get("REWARDS_TWILIO_AUTH_TOKEN") or None,
        guest_services_phone=os.environ.get("REWARDS_GUEST_SERVICES_PHONE") or "1-800-555-0199",
        guest_services_email=os.environ.get("REWARDS_GUEST_SERVICES_EMAIL") or "guestservices@westique.example",
        timezone=timezone,
        erasure_notice_hours=_erasure_notice_hours(),
        jobs=_bool("REWARDS_JOBS", True),
        expiry_notice=_duration("REWARDS_EXPIRY_NOTICE", timedelta(days=7)),
        expiry_interval=_positive_duration("REWARDS_EXPIRY_INTERVAL", timedelta(hours=1)),
        webhook_timeout=_positive_duration("REWARDS_WEBHOOK_TIMEOUT", timedelta(seconds=10)),
        webhook_concurrency=max(1, _int("REWARDS_WEBHOOK_CONCURRENCY", 16)),
    )


def _erasure_notice_hours() -> int:
    hours = _int("REWARDS_ERASURE_NOTICE_HOURS", 24)
    if not 0 <= hours <= 24 * 45:
        raise ValueError("REWARDS_ERASURE_NOTICE_HOURS must be a whole number of hours from 0 (erase at once) "
                         "to 1080 (45 days, the time a deletion request may take)")
    return hours


def _positive_duration(name: str, default: timedelta) -> timedelta:
    span = _duration(name, default)
    if span <= timedelta(0):
        raise ValueError(f"{name} must be longer than zero")
    return span


MIN_SECRET_KEY_LENGTH = 32
SECRET_KEY_FILE = "secret_key"


def secret_key(settings: Settings) -> str:
    """The key that signs links: `REWARDS_SECRET_KEY`, or the one kept in the data folder.

    The first process to need it writes a fresh key to `data_dir/secret_key` (mode 0600) and
    every later one, in any worker or `rewards` command, reads that file, so links outlive
    restarts. The file is written whole under a temporary name and then hard-linked into
    place, which fails if another process got there first: readers never see half a key and
    two racing workers end up with the same one. Hosts that share a database but not a data
    folder must set `REWARDS_SECRET_KEY` to one value everywhere.
    """
    if settings.secret_key is not None:
        return settings.secret_key
    folder = settings.data_dir
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = folder / SECRET_KEY_FILE
    if not path.exists():
        draft = folder / f".{SECRET_KEY_FILE}.{os.getpid()}.{secrets.token_hex(4)}"
        descriptor = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(descriptor, "w") as out:
                out.write(secrets.token_urlsafe(48) + "\n")
                out.flush()
                os.fsync(out.fileno())
            with contextlib.suppress(FileExistsError):
                os.link(draft, path)
        finally:
            draft.unlink()
    if path.stat().st_mode & 0o077:
        log.warning("%s can be read by other users; chmod 600 it", path)
    key = path.read_text().strip()
    if len(key) < MIN_SECRET_KEY_LENGTH:
        raise ValueError(f"{path} holds no usable key (at least {MIN_SECRET_KEY_LENGTH} characters); "
                         "delete it to have a new one made (links signed with the old one stop working)")
    return key
