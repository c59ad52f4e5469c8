"""Storing and reading the disclosures and the published terms and notice.

Both tables are append-only (sql/011): storing disclosures adds a version, publishing a
document adds a version of its kind. A published version's text never changes, so a
consent that names it (rewards.members) points at exactly what the guest accepted:
publishing the same kind and version again answers the first publication when the text is
the same, and 409 `document_version_exists` when it differs.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal

import msgspec

from rewards.schemas import Inbound
from msgspec import Meta

from incentives.disclosures import Disclosures, DisclosuresOut, problems
from rewards import errors
from rewards.db import Database

Kind = Literal["terms", "notice"]
Version = Annotated[str, Meta(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9._\-]+$")]
# a publication dated a little before the request still takes effect "now" (clocks differ)
CLOCK_SKEW = timedelta(minutes=5)


class DocumentIn(Inbound, frozen=True, kw_only=True):
    kind: Kind
    version: Version
    text: Annotated[str, Meta(min_length=1, max_length=200_000)]
    effective_from: Annotated[datetime, Meta(tz=True)] | None = None
    """When the version takes effect: now by default, never earlier than its publication."""


class DocumentOut(msgspec.Struct, kw_only=True):
    kind: str
    version: str
    text: str
    sha256: str
    effective_from: datetime
    published_at: datetime


class DocumentsOut(msgspec.Struct, kw_only=True):
    items: list[DocumentOut]


async def current_disclosures(db: Database) -> DisclosuresOut:
    (row,) = await db.run("SELECT version, body, created_at FROM program_disclosures ORDER BY version DESC LIMIT 1")
    return DisclosuresOut(version=row["version"], created_at=row["created_at"],
                          disclosures=msgspec.convert(row["body"], Disclosures))


async def store_disclosures(db: Database, disclosures: Disclosures) -> DisclosuresOut:
    """Keep a new version of the disclosures; the notice uses it from now on."""
    found = problems(disclosures)
    if found:
        field, message = found[0]
        raise errors.ValidationFailed(message, field=field)
    (row,) = await db.transaction(lambda conn: conn.fetch(
        """INSERT INTO program_disclosures (version, body)
           SELECT coalesce(max(version), 0) + 1, $1::jsonb FROM program_disclosures
           RETURNING version, created_at""",
        msgspec.json.encode(disclosures).decode()))
    return DisclosuresOut(version=row["version"], created_at=row["created_at"], disclosures=disclosures)


def _document(row: msgspec.Struct | dict) -> DocumentOut:
    return DocumentOut(**{k: row[k] for k in ("kind", "version", "text", "sha256", "effective_from",  # type: ignore[index]
                                              "published_at")})


async def publish(db: Database, document: DocumentIn) -> tuple[bool, DocumentOut]:
    """Publish a version of the terms or the notice; (created, the publication)."""
    now = datetime.now(UTC)
    effective_from = document.effective_from or now
    if effective_from < now - CLOCK_SKEW:
        raise errors.ValidationFailed("effective_from is in the past: a text takes effect no earlier than it is "
                                      "published", field="effective_from")
    digest = hashlib.sha256(document.text.encode()).hexdigest()

    async def work(conn):
        row = await conn.fetchrow(
            """INSERT INTO program_documents (kind, version, text, sha256, effective_from)
               VALUES ($1, $2, $3, $4, $5) ON CONFLICT (kind, version) DO NOTHING
               RETURNING kind, version, text, sha256, effective_from, published_at""",
            document.kind, document.version, document.text, digest, effective_from)
        if row is not None:
            return True, _document(row)
        first = await conn.fetchrow(
            """SELECT kind, version, text, sha256, effective_from, published_at FROM program_documents
               WHERE kind = $1 AND version = $2""", document.kind, document.version)
        if first["sha256"] != digest:
            raise errors.DocumentVersionExists(
                f"{document.kind} version {document.version} is published with another text; publish a new version")
        return False, _document(first)

    return await db.transaction(work)


async def documents(db: Database, kind: str | None) -> DocumentsOut:
    rows = await db.run(
        """SELECT kind, version, text, sha256, effective_from, published_at FROM program_documents
           WHERE $1::text IS NULL OR kind = $1 ORDER BY kind, effective_from, id""", kind)
    return DocumentsOut(items=[_document(r) for r in rows])
