"""The baseline for reading a balance: a bare Litestar JSON endpoint, served like the service.

    uvicorn --factory bench.bare_app:create_app --loop uvloop --http httptools --workers N

No database, no guard, no middleware: what Litestar itself costs per request on this
machine, so the balance read can be measured as a ratio of it in the same run.
"""

from __future__ import annotations

import msgspec
from litestar import Litestar, get


class Brief(msgspec.Struct):
    member_id: int
    status: str
    points: int
    point_cents: int


@get("/bare/{member_id:int}")
async def bare(member_id: int) -> Brief:
    return Brief(member_id=member_id, status="active", points=123, point_cents=12345)


@get("/ready")
async def ready() -> dict[str, bool]:
    return {"ready": True}


def create_app() -> Litestar:
    return Litestar(route_handlers=[bare, ready], debug=False)
