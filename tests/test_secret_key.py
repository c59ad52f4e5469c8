"""REWARDS_SECRET_KEY and REWARDS_PUBLIC_URL: the key kept in the data folder, links that
outlive restarts of several workers."""

from __future__ import annotations

import asyncio
import os
import stat
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from rewards.config import load_settings, secret_key
from rewards.unsubscribe_links import UnsubscribeLinks
from tests.conftest import auth
from tests.reliability.harness import Service, running

ONE_CLICK = {"content": "List-Unsubscribe=One-Click", "headers": {"content-type": "application/x-www-form-urlencoded"}}


def settings_in(folder: Path, **env: str) -> Any:
    """The settings `rewards` would load with this data folder and environment."""
    saved = dict(os.environ)
    try:
        for name in ("REWARDS_SECRET_KEY", "REWARDS_PUBLIC_URL", "REWARDS_HOST", "REWARDS_PORT"):
            os.environ.pop(name, None)
        os.environ.update({"REWARDS_DATA_DIR": str(folder), **env})
        return load_settings()
    finally:
        os.environ.clear()
        os.environ.update(saved)


def test_an_unset_key_is_made_once_and_kept_in_the_data_folder(tmp_path: Path) -> None:
    folder = tmp_path / "data" / "nested"
    key = secret_key(settings_in(folder))
    kept = folder / "secret_key"
    assert len(key) >= 32 and kept.read_text().strip() == key
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    # a restart (new settings, same folder) reads the same key, and writes nothing new
    assert secret_key(settings_in(folder)) == key
    assert sorted(p.name for p in folder.iterdir()) == ["secret_key"]
    # another data folder is another installation with its own key
    assert secret_key(settings_in(tmp_path / "other")) != key


def test_a_configured_key_is_used_and_nothing_is_written(tmp_path: Path) -> None:
    configured = "k" * 40
    assert secret_key(settings_in(tmp_path / "data", REWARDS_SECRET_KEY=configured)) == configured
    assert not (tmp_path / "data").exists()


def test_a_short_configured_key_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least 32"):
        settings_in(tmp_path, REWARDS_SECRET_KEY="too short")


def test_a_damaged_key_file_is_reported_not_replaced(tmp_path: Path) -> None:
    (tmp_path / "secret_key").write_text("\n")
    with pytest.raises(ValueError, match="holds no usable key"):
        secret_key(settings_in(tmp_path))
    assert (tmp_path / "secret_key").read_text() == "\n"


def test_processes_racing_for_a_new_key_all_get_the_same_one(tmp_path: Path) -> None:
    folder = tmp_path / "raced"
    program = ("import sys; from pathlib import Path; from rewards.config import load_settings, secret_key; "
               "print(secret_key(load_settings()))")
    env = {k: v for k, v in os.environ.items() if k != "REWARDS_SECRET_KEY"} | {"REWARDS_DATA_DIR": str(folder)}
    racers = [subprocess.Popen([sys.executable, "-c", program], env=env, stdout=subprocess.PIPE) for _ in range(8)]
    keys = {racer.communicate(timeout=60)[0].decode().strip() for racer in racers}
    assert all(racer.returncode == 0 for racer in racers)
    assert len(keys) == 1 and (folder / "secret_key").read_text().strip() in keys
    assert [p.name for p in folder.iterdir()] == ["secret_key"]  # no draft left behind


@pytest.mark.parametrize(
    ("env", "public_url"),
    [({}, "http://127.0.0.1:8000"),
     ({"REWARDS_HOST": "0.0.0.0", "REWARDS_PORT": "9000"}, "http://127.0.0.1:9000"),
     ({"REWARDS_HOST": "rewards.internal", "REWARDS_PORT": "8080"}, "http://rewards.internal:8080"),
     ({"REWARDS_HOST": "::1"}, "http://[::1]:8000"),
     ({"REWARDS_PUBLIC_URL": "https://rewards.westique.example/"}, "https://rewards.westique.example"),
     ({"REWARDS_PUBLIC_URL": "https://westique.example/rewards"}, "https://westique.example/rewards")],
)
def test_the_public_url_defaults_to_where_the_service_listens(tmp_path: Path, env: dict[str, str],
                                                              public_url: str) -> None:
    assert settings_in(tmp_path, **env).public_url == public_url


@pytest.mark.parametrize("url", ["rewards.westique.example", "ftp://westique.example", "https://", "https://x.example/?a=1"])
def test_a_public_url_that_is_not_an_http_address_is_refused(tmp_path: Path, url: str) -> None:
    with pytest.raises(ValueError, match="REWARDS_PUBLIC_URL"):
        settings_in(tmp_path, REWARDS_PUBLIC_URL=url)


# --- links outlive restarts --------------------------------------------------------------------


async def test_links_stay_valid_across_restarts_and_workers(database_url: str, tmp_path: Path, keys: dict[str, str],
                                                            db: Any) -> None:
    """`rewards serve --workers 2` with no key configured: the key made in the data folder signs
    the links every worker accepts, before and after a restart."""
    folder = tmp_path / "data"
    env = {"REWARDS_DATA_DIR": str(folder), "REWARDS_SECRET_KEY": ""}
    service = Service(database_url, workers=2, env=env)
    with running(service):
        await service.wait_up()
        async with httpx.AsyncClient(base_url=service.base_url, timeout=30) as http:
            address = f"restart.{uuid.uuid4().hex[:8]}@example.com"
            made = await http.post("/v1/subscriptions", headers=auth(keys["guest_services"]),
                                   json={"channel": "email", "address": address, "source": "online"})
            assert made.status_code in (200, 201), made.text
            sid = made.json()["subscription_id"]
            key = (folder / "secret_key").read_text().strip()
            link = UnsubscribeLinks(key, service.base_url).unsubscribe_url(sid)
            # several requests, so both workers answer some of them
            pages = await asyncio.gather(*(http.get(link) for _ in range(20)))
            assert {page.status_code for page in pages} == {200}
            assert address in pages[0].text
    assert stat.S_IMODE((folder / "secret_key").stat().st_mode) == 0o600

    restarted = Service(database_url, workers=2, env=env)
    with running(restarted):
        await restarted.wait_up()
        async with httpx.AsyncClient(timeout=30) as http:
            # the link sent before the restart (the port changed; the token did not need to)
            again = link.replace(service.base_url, restarted.base_url)
            assert (await http.get(again)).status_code == 200
            clicked = await http.post(again, **ONE_CLICK)
            assert clicked.status_code == 200, clicked.text
            forged = UnsubscribeLinks("another key, made elsewhere, 0123456789", restarted.base_url).unsubscribe_url(sid)
            assert (await http.get(forged)).status_code == 404
    assert (folder / "secret_key").read_text().strip() == key
    rows = await db.run("SELECT status FROM subscriptions WHERE id = $1", sid)
    assert rows[0]["status"] == "unsubscribed"
