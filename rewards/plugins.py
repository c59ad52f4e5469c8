"""Extensions found at run time: packages register under the `rewards.plugins` entry point.

The incentives reports plug in this way, so that `rewards` never imports `incentives`.
A plugin is a module with `routes` (Litestar handlers) and `commands` (click commands).
"""

from __future__ import annotations

import os
from importlib.metadata import entry_points
from typing import Any


def plugins() -> list[Any]:
    if os.environ.get("REWARDS_NO_PLUGINS"):
        return []
    return [ep.load() for ep in entry_points(group="rewards.plugins")]


def plugin_routes() -> list[Any]:
    return [route for plugin in plugins() for route in getattr(plugin, "routes", [])]


def plugin_commands() -> list[Any]:
    return [command for plugin in plugins() for command in getattr(plugin, "commands", [])]
