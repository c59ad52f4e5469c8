"""`rewards import purchases FILE` and `rewards import adjustments FILE`: JSON lines or CSV.

Both go the same way (a `Kind` says what differs: the record, its CSV columns, its command,
what the summary adds up); purchases are described first, adjustments at the end.

Each purchase is decoded with the API's own struct and posted through the posting engine
(`rewards.engine`), a batch per transaction: the same decisions, in the same place, as
`POST /v1/purchases` posted in file order, idempotent by purchase_id. Re-running a file
imports nothing twice (its purchases come back as replays), and a purchase imported and
then posted through the API is a replay there too. `history=True` (`--history`) accepts
purchases older than REWARDS_MAX_BACKDATE, each computed with the rules of its day. Memory
stays bounded whatever the file's size: two rounds of batches are held at a time, and a
round's refused lines are written to the rejected file, in line order, once it is applied.

CSV: a header row naming the columns (any order), then one row per purchase line; the
rows of one purchase are consecutive and share its purchase_id (met again further on, it
is another posting of that purchase_id: a replay or a conflict). The purchase's columns
(`member_id`, `occurred_at`, `store_id`, `channel`, and `currency`, empty for USD) are
given on its first row, and on the others either left empty or repeated the same. A
line's columns are `sku`, `category`, `quantity`, `amount_cents`. A tender goes on any
row of its purchase, one a row: `tender_method`, `tender_amount_cents`, `reward_code`
(for a `reward` tender); so does an offer, with `offer_code` and `offer_discount_cents`
(optional columns). A row may carry a line, a tender, an offer, or all three. Each
purchase is then exactly the API body its rows spell, checked and refused (under the
number of its first row) like a JSON line.

Adjustments (opening balances from a previous program, corrections in bulk): each JSON line
is the API's adjustment body plus the member, named by `member_id` or by `external_id` (the
retailer's own id, matched to the active member that has it, or else the latest one); CSV
has one row per adjustment with the columns `adjustment_id`, `member_id` or `external_id`,
`point_cents`, `reason` and optionally `note`. They post through the engine like
`POST /v1/members/{id}/adjustments` (as the service: no limit by scope), idempotent by
adjustment_id, in file order per member.
"""

from __future__ import annotations

import asyncio
import csv
import gc
import io
import re
import resource
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Literal, Protocol

import msgspec

from rewards import errors
from rewards.db import Database
from rewards.engine import Adjust, Command, Limits, Outcome, PostPurchase, apply, system
from rewards.engine.posting import BEGIN as ENGINE_BEGIN
from rewards.rulebook import Rulebook
from rewards.schemas import AdjustmentLine, PurchaseIn

BATCH = 2000
CONNECTIONS = 2
IMPORTER = system("import")
_encode = msgspec.json.Encoder().encode


@dataclass
class ImportSummary:
    lines: int = 0
    """Records read: JSON lines, CSV adjustments, or CSV purchases (groups of rows)."""
    imported: int = 0
    already_imported: int = 0
    """Records whose key (purchase_id, adjustment_id) was already posted with the same body (a re-run,
    or the API first)."""
    rejected: int = 0
    rewards_issued: int = 0
    point_cents_earned: int = 0
    """Purchases: the points they earned."""
    point_cents_adjusted: int = 0
    """Adjustments: the points they added, less those they took."""
    seconds: float = 0.0
    peak_rss_mib: float = 0.0
    rejected_file: str | None = None
    reasons: dict[str, int] = field(default_factory=dict)

    @property
    def per_second(self) -> float | None:
        """Purchases a second, or None when the import took too little time to measure a rate."""
        return self.lines / self.seconds if self.seconds >= 1.0 else None


@dataclass(order=True)
class _Reject:
    line_no: int
    record: bytes = field(compare=False)


class _Rejects:
    """The rejected file: one JSON line per refused purchase, with its reason, in line order.

    Refusals are held per round and written when the round is done: a round's lines can be
    refused while it is read (not a purchase) or when it is applied, and the next round is
    read while this one is applied."""

    def __init__(self, path: Path, summary: ImportSummary, key: str = "purchase_id") -> None:
        self.path = path
        self.summary = summary
        self.key = key
        self._file: IO[bytes] | None = None

    def refuse(self, held: list[_Reject], line_no: int, raw: bytes | list[list[str]], code: str, reason: str,
               key: str | None = None) -> None:
        self.summary.rejected += 1
        self.summary.reasons[code] = self.summary.reasons.get(code, 0) + 1
        record = {"line": line_no, self.key: key, "code": code, "reason": reason, "input": _input_text(raw)}
        held.append(_Reject(line_no, _encode(record) + b"\n"))

    def write(self, held: list[_Reject]) -> None:
        if not held:
            return
        if self._file is None:
            self._file = self.path.open("wb")
            self.summary.rejected_file = str(self.path)
        for reject in sorted(held):
            self._file.write(reject.record)
        held.clear()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()


def _input_text(raw: bytes | list[list[str]]) -> str:
    """A JSON line as read, or a CSV purchase's rows written back as CSV."""
    if isinstance(raw, bytes):
        return raw.decode("utf-8", "replace").rstrip("\r\n")
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(raw)
    return out.getvalue().rstrip("\n")


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@dataclass
class _Round:
    """Purchases read together, applied together (split by member), with their refusals."""

    items: list[_Item] = field(default_factory=list)
    rejects: list[_Reject] = field(default_factory=list)
    read: int = 0


class Kind(Protocol):
    """What an import of one kind of record needs besides the shared machinery."""

    key: str
    """The record's idempotency key, as the API names it (`purchase_id`)."""

    def csv_records(self, source: IO[bytes]) -> Iterator[_Read]:
        """The records of a CSV file, each as its API body (JSON) or why it is refused."""
        ...

    def command(self, body: bytes, history: bool) -> Command | Any:
        """The body as a posting, or what stands for it until `resolve` (msgspec's errors if it is not one)."""
        ...

    async def resolve(self, db: Database, items: list[_Item]) -> list[_Item]:
        """The round's items with every posting made, or `Refused`."""
        ...

    def owner(self, command: Command) -> tuple[int, str]:
        """(member_id, key) of a posting."""
        ...

    def tally(self, summary: ImportSummary, answer: Any) -> None:
        """Add a new posting's answer to the summary."""
        ...


def count_records(path: Path, kind: Kind, file_format: Format | None = None) -> int:
    """How many records the file holds (for the progress bar): a pass over it, reading nothing else."""
    with path.open("rb") as source:
        if (file_format or format_of(path)) == "jsonl":
            return sum(1 for raw in source if raw.strip())
        try:
            return sum(1 for _ in kind.csv_records(source))
        except CsvHeaderError:
            return 0


async def import_purchases(db: Database, path: Path, **options: Any) -> ImportSummary:
    """Import the purchases in `path` (see `import_records`)."""
    return await import_records(db, path, PURCHASES, **options)


async def import_adjustments(db: Database, path: Path, **options: Any) -> ImportSummary:
    """Import the adjustments in `path` (see `import_records`)."""
    return await import_records(db, path, ADJUSTMENTS, **options)


async def import_records(
    db: Database,
    path: Path,
    kind: Kind,
    *,
    limits: Limits | None = None,
    history: bool = False,
    rejected_path: Path | None = None,
    batch_size: int = BATCH,
    connections: int = CONNECTIONS,
    file_format: Format | None = None,
    progress: Callable[[int], None] | None = None,
) -> ImportSummary:
    """Import the records of `kind` in `path`; `progress` hears how many are done so far.

    `file_format` is "jsonl" or "csv" (see the module's docstring); by default a file
    named *.csv is CSV and any other JSON lines.

    The purchases are read in rounds of `connections` × `batch_size`. A round is split by
    member (member_id modulo `connections`) into batches applied at the same time, one
    transaction each on its own connection: no two lock the same member, and each member's
    purchases keep their file order. A round is applied only once the one before has
    committed, while the next is being read, so a purchase_id met again later in the file
    finds the first one committed; a purchase_id that appears under two members within one
    round makes that round go as a single batch, in file order. Either way every purchase
    gets the outcome it would get posted through the API line after line.
    """
    limits = limits or Limits()
    summary = ImportSummary()
    rejects = _Rejects(rejected_path or path.with_name(path.name + ".rejected.jsonl"), summary, kind.key)
    rulebook = Rulebook(db)
    started = time.perf_counter()
    connections = max(1, min(connections, db.pool_size))
    round_size = batch_size * connections
    this = _Round()
    applying: asyncio.Task[None] | None = None  # the round before, being written while this one is read
    done = 0
    collecting = gc.isenabled()
    # Left on, the collector walks the rounds' hundreds of thousands of live objects again
    # and again to find no cycle (a fifth of the CPU of reading the lines): reference
    # counting frees the rounds. It runs once a round instead; memory stays bounded.
    gc.disable()

    async def finish(previous: _Round) -> None:
        nonlocal done
        await _apply_round(db, rulebook, limits, kind, previous, connections, summary, rejects)
        rejects.write(previous.rejects)
        done += previous.read
        if progress:
            progress(done)

    try:
        with path.open("rb") as source:
            fmt = file_format or format_of(path)
            records = kind.csv_records(source) if fmt == "csv" else _json_lines(source)
            for line_no, raw, body, refused in records:
                summary.lines += 1
                this.read += 1
                if refused is not None:
                    rejects.refuse(this.rejects, line_no, raw, *refused)
                else:
                    command = _decode(kind, body, history, raw, line_no, rejects, this.rejects)
                    if command is not None:
                        this.items.append((line_no, raw, command))
                if summary.lines % 50 == 0:
                    # let the round being written take its next round trip: every 200 lines, the
                    # batches waited for the reader between statements (13 to 50 % slower in all)
                    await asyncio.sleep(0)
                if len(this.items) >= round_size:
                    if applying is not None:
                        await applying  # rounds commit in file order, one after the other
                    applying = asyncio.create_task(finish(this))
                    this = _Round()
                    if collecting:
                        gc.collect(0)
            if applying is not None:
                await applying
                applying = None
            await finish(this)
    finally:
        if applying is not None:
            await asyncio.gather(applying, return_exceptions=True)
        if collecting:
            gc.enable()
        rejects.close()
        summary.seconds = time.perf_counter() - started
        summary.peak_rss_mib = peak_rss_mib()
    return summary


Format = Literal["jsonl", "csv"]
_Raw = bytes | list[list[str]]  # a JSON line as read, or a CSV record's rows
_Item = tuple[int, _Raw, Any]  # (line number, the input as read, the posting, or what stands for it)
# a record as read: its first line's number, the input, the API body (JSON) or why it is refused
_Read = tuple[int, _Raw, bytes, tuple[str, str, str | None] | None]


def format_of(path: Path) -> Format:
    return "csv" if path.suffix.lower() == ".csv" else "jsonl"


def _json_lines(source: IO[bytes]) -> Iterator[_Read]:
    for line_no, raw in enumerate(source, start=1):
        if raw.strip():
            yield line_no, raw, raw, None


CSV_COLUMNS = ("purchase_id", "member_id", "occurred_at", "store_id", "channel", "currency",
               "sku", "category", "quantity", "amount_cents",
               "tender_method", "tender_amount_cents", "reward_code", "offer_code", "offer_discount_cents")
CSV_REQUIRED = ("purchase_id", "member_id", "occurred_at", "store_id", "channel",
                "sku", "category", "quantity", "amount_cents", "tender_method", "tender_amount_cents")
_PURCHASE_COLUMNS = ("member_id", "occurred_at", "store_id", "channel", "currency")
# the most rows a purchase can take: 500 lines, and 20 tenders and 20 offers on rows of their own
_MAX_ROWS = 540
_INTEGER = re.compile(r"-?[0-9]+")


class CsvHeaderError(ValueError):
    """The CSV file's header does not name the columns a purchase needs; nothing is imported."""


def _csv_reader(source: IO[bytes], known: tuple[str, ...], required: tuple[str, ...]
                ) -> tuple[Any, dict[str, int]] | None:
    """A CSV reader past the header, and each column's place; None for an empty file."""

    def text() -> Iterator[str]:
        for n, raw in enumerate(source):
            line = raw.decode("utf-8", "replace")
            # a spreadsheet's byte-order mark, before the header's first cell (and its quote, if any)
            yield line.removeprefix("\ufeff") if n == 0 else line

    reader = csv.reader(text())
    header = next(reader, None)
    if header is None:
        return None
    header = [name.strip() for name in header]
    unknown = [name for name in header if name not in known]
    missing = [name for name in required if name not in header]
    repeated = sorted({name for name in header if header.count(name) > 1})
    if unknown or missing or repeated:
        raise CsvHeaderError("; ".join(
            what for what in (unknown and f"unknown columns: {', '.join(unknown)}",
                              missing and f"missing columns: {', '.join(missing)}",
                              repeated and f"columns named twice: {', '.join(repeated)}") if what)
            + f" (the columns are: {', '.join(known)})")
    return reader, {name: i for i, name in enumerate(header)}


def _csv_rows(reader: Any, width: int) -> Iterator[tuple[int, list[str], _Read | None]]:
    """Each row that is not blank, with the line it starts on, and its refusal when it has not
    the header's number of columns."""
    read_to = reader.line_num
    for row in reader:
        line_no, read_to = read_to + 1, reader.line_num
        if not any(cell.strip() for cell in row):
            continue
        refused = None if len(row) == width else (
            line_no, [row], b"", ("validation_error", f"{len(row)} columns where the header names {width}", None))
        yield line_no, row, refused


def _csv_purchases(source: IO[bytes]) -> Iterator[_Read]:
    opened = _csv_reader(source, CSV_COLUMNS, CSV_REQUIRED)
    if opened is None:
        return
    reader, columns = opened
    key = columns["purchase_id"]
    group: list[list[str]] = []
    first_line = 0
    too_many = False
    for line_no, row, refused in _csv_rows(reader, len(columns)):
        if refused is not None:
            if group:
                yield _csv_purchase(columns, group, first_line, too_many)
                group = []
            yield refused
            continue
        if group and row[key].strip() != group[0][key].strip():
            yield _csv_purchase(columns, group, first_line, too_many)
            group = []
        if not group:
            first_line, too_many = line_no, False
        if len(group) < _MAX_ROWS:
            group.append(row)
        else:
            too_many = True  # refused whole; only its first rows are kept, to be quoted
    if group:
        yield _csv_purchase(columns, group, first_line, too_many)


def _csv_purchase(columns: dict[str, int], rows: list[list[str]], line_no: int, too_many: bool) -> _Read:
    """The API body a purchase's CSV rows spell, as JSON; its checks are the API's, made later."""

    def cells(name: str) -> list[str]:
        i = columns.get(name)
        return [""] * len(rows) if i is None else [row[i].strip() for row in rows]

    purchase_id = rows[0][columns["purchase_id"]].strip()
    if too_many:
        return line_no, rows, b"", ("validation_error", f"more than {_MAX_ROWS} rows for one purchase", purchase_id)
    body: dict[str, object] = {"purchase_id": purchase_id}
    for name in _PURCHASE_COLUMNS:
        given = [value for value in cells(name) if value]
        if any(value != given[0] for value in given):
            return line_no, rows, b"", (
                "validation_error", f"the rows of purchase {purchase_id} disagree on {name}: "
                                    f"{', '.join(sorted(set(given)))}", purchase_id)
        if given or name != "currency":  # an empty currency is the API's default, USD
            body[name] = _cell(given[0] if given else "") if name == "member_id" else (given[0] if given else "")
    line_cells = zip(cells("sku"), cells("category"), cells("quantity"), cells("amount_cents"), strict=True)
    body["lines"] = [{"sku": sku, "category": category, "quantity": _cell(quantity), "amount_cents": _cell(amount)}
                     for sku, category, quantity, amount in line_cells if sku or category or quantity or amount]
    tenders = []
    for method, amount, code in zip(cells("tender_method"), cells("tender_amount_cents"), cells("reward_code"),
                                    strict=True):
        if method or amount or code:
            tenders.append({"method": method, "amount_cents": _cell(amount), **({"reward_code": code} if code else {})})
    body["tenders"] = tenders
    offers = [{"code": code, "discount_cents": _cell(discount)}
              for code, discount in zip(cells("offer_code"), cells("offer_discount_cents"), strict=True)
              if code or discount]
    if offers:
        body["offers"] = offers
    return line_no, rows, _encode(body), None


def _cell(text: str) -> int | str:
    """A whole number as a number; anything else as the text, for the API's checks to refuse."""
    return int(text) if _INTEGER.fullmatch(text) else text


def _decode(kind: Kind, body: bytes, history: bool, raw: _Raw, line_no: int, rejects: _Rejects,
            held: list[_Reject]) -> Any:
    """The body as a posting (or what stands for it), or None after refusing it (the engine checks the rest)."""
    try:
        return kind.command(body, history)
    except msgspec.ValidationError as exc:
        rejects.refuse(held, line_no, raw, "validation_error", str(exc), _key(body, kind.key))
    except msgspec.DecodeError as exc:
        rejects.refuse(held, line_no, raw, "malformed_request", f"not valid JSON: {exc}")
    return None


def _key(raw: bytes, name: str) -> str | None:
    try:
        found = msgspec.json.decode(raw)
    except msgspec.DecodeError:
        return None
    value = found.get(name) if isinstance(found, dict) else None
    return value if isinstance(value, str) else None


def split_by_member(items: list[_Item], parts: int, kind: Kind | None = None) -> list[list[_Item]] | None:
    """`items` in `parts` batches by member_id, each in file order; None if a key (purchase_id)
    appears under members of two batches (the round must then go as one batch)."""
    owner_of = (kind or PURCHASES).owner
    batches: list[list[_Item]] = [[] for _ in range(parts)]
    owner: dict[str, int] = {}
    for item in items:
        member_id, key = owner_of(item[2])
        part = member_id % parts
        if owner.setdefault(key, part) != part:
            return None
        batches[part].append(item)
    return [batch for batch in batches if batch]


async def _apply_round(db: Database, rulebook: Rulebook, limits: Limits, kind: Kind, this: _Round,
                       connections: int, summary: ImportSummary, rejects: _Rejects) -> None:
    items: list[_Item] = []
    for line_no, raw, resolved in await kind.resolve(db, this.items):
        if isinstance(resolved, Refused):
            rejects.refuse(this.rejects, line_no, raw, resolved.error.code, resolved.error.detail, resolved.key)
        else:
            items.append((line_no, raw, resolved))
    batches = split_by_member(items, connections, kind) if connections > 1 else None
    if batches is None:
        batches = [items] if items else []
    results = await asyncio.gather(*(_apply(db, rulebook, limits, kind, batch, summary, rejects, this.rejects)
                                     for batch in batches), return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result


async def _apply(db: Database, rulebook: Rulebook, limits: Limits, kind: Kind, batch: list[_Item],
                 summary: ImportSummary, rejects: _Rejects, held: list[_Reject]) -> None:
    commands = [posting for _, _, posting in batch]
    outcomes: list[Outcome] = await db.transaction(lambda conn: apply(conn, commands, rulebook, limits),
                                                   begin=ENGINE_BEGIN)
    for (line_no, raw, posting), outcome in zip(batch, outcomes, strict=True):
        if outcome.error is not None:
            rejects.refuse(held, line_no, raw, outcome.error.code, outcome.error.detail, kind.owner(posting)[1])
        elif outcome.created:
            summary.imported += 1
            kind.tally(summary, outcome.answer)
        else:
            summary.already_imported += 1
    await asyncio.sleep(0)


@dataclass(frozen=True)
class Refused:
    """A record `Kind.resolve` could not make a posting of."""

    error: errors.DomainError
    key: str | None


# --- the kinds ----------------------------------------------------------------------------------------


class _Purchases:
    key = "purchase_id"
    _decode = msgspec.json.Decoder(PurchaseIn).decode

    def csv_records(self, source: IO[bytes]) -> Iterator[_Read]:
        return _csv_purchases(source)

    def command(self, body: bytes, history: bool) -> PostPurchase:
        return PostPurchase.of(self._decode(body), IMPORTER, history=history)

    async def resolve(self, db: Database, items: list[_Item]) -> list[Any]:
        return items

    def owner(self, command: Command) -> tuple[int, str]:
        assert isinstance(command, PostPurchase)
        return command.purchase.member_id, command.purchase.purchase_id

    def tally(self, summary: ImportSummary, answer: Any) -> None:
        summary.rewards_issued += len(answer.rewards_issued)
        summary.point_cents_earned += answer.point_cents_earned


ADJUSTMENT_COLUMNS = ("adjustment_id", "member_id", "external_id", "point_cents", "reason", "note")
ADJUSTMENT_REQUIRED = ("adjustment_id", "point_cents", "reason")
# the member an external id names: the active one that has it, or else the latest to have had it
EXTERNAL_IDS = """SELECT DISTINCT ON (external_id) external_id, id FROM members WHERE external_id = ANY ($1::text[])
                  ORDER BY external_id, status = 'active' DESC, id DESC"""


class _Adjustments:
    key = "adjustment_id"
    _decode = msgspec.json.Decoder(AdjustmentLine).decode

    def csv_records(self, source: IO[bytes]) -> Iterator[_Read]:
        opened = _csv_reader(source, ADJUSTMENT_COLUMNS, ADJUSTMENT_REQUIRED)
        if opened is None:
            return
        reader, columns = opened
        if "member_id" not in columns and "external_id" not in columns:
            raise CsvHeaderError("missing columns: member_id or external_id (the columns are: "
                                 f"{', '.join(ADJUSTMENT_COLUMNS)})")
        for line_no, row, refused in _csv_rows(reader, len(columns)):
            if refused is not None:
                yield refused
                continue
            body: dict[str, object] = {}
            for name, i in columns.items():
                value = row[i] if name == "note" else row[i].strip()
                if value:
                    body[name] = _cell(value) if name in ("member_id", "point_cents") else value
            yield line_no, [row], _encode(body), None

    def command(self, body: bytes, history: bool) -> Adjust | AdjustmentLine:
        line = self._decode(body)
        if line.member_id is None:
            return line  # named by external_id: made a posting by `resolve`
        return Adjust.of(line.member_id, line.adjustment(), IMPORTER)

    async def resolve(self, db: Database, items: list[_Item]) -> list[Any]:
        wanted = sorted({item[2].external_id or "" for item in items if isinstance(item[2], AdjustmentLine)})
        if not wanted:
            return items
        found = {r["external_id"]: r["id"] for r in await db.run(EXTERNAL_IDS, wanted)}
        resolved: list[Any] = []
        for line_no, raw, made in items:
            if isinstance(made, AdjustmentLine):
                member_id = found.get(made.external_id)
                made = Adjust.of(member_id, made.adjustment(), IMPORTER) if member_id is not None else Refused(
                    errors.NotFound(f"no member has external_id {made.external_id}"), made.adjustment_id)
            resolved.append((line_no, raw, made))
        return resolved

    def owner(self, command: Command) -> tuple[int, str]:
        assert isinstance(command, Adjust)
        return command.member_id, command.adjustment.adjustment_id

    def tally(self, summary: ImportSummary, answer: Any) -> None:
        summary.rewards_issued += len(answer.rewards_issued)
        summary.point_cents_adjusted += answer.point_cents


PURCHASES: Kind = _Purchases()
ADJUSTMENTS: Kind = _Adjustments()
