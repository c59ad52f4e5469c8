"""What incentives adds to the service: the report endpoints and the `rewards report` commands."""

from __future__ import annotations

from typing import Any

routes: list[Any] = []
commands: list[Any] = []
