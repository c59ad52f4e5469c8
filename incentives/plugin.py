"""What incentives adds to the service: the report endpoints and the `rewards report` commands."""

from __future__ import annotations

from typing import Any

from incentives.api import ROUTES
from incentives.cli import report

routes: list[Any] = list(ROUTES)
commands: list[Any] = [report]
