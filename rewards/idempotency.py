"""Request fingerprints: the canonical form of a request, and its digest.

A posting stores the fingerprint of its request with its answer, in the same
transaction; a retry with the same key and fingerprint replays the answer, a retry
with the same key and another fingerprint is an `idempotency_conflict`.
"""

from __future__ import annotations

import hashlib

import msgspec

_canonical = msgspec.json.Encoder(order="sorted")


def canonical(request: msgspec.Struct, **context: object) -> bytes:
    """The request as sorted JSON; `context` adds what the path carries (a return's purchase)."""
    if not context:
        return _canonical.encode(request)
    return _canonical.encode({"request": request, **context})


def fingerprint(canonical_body: bytes) -> bytes:
    return hashlib.sha256(canonical_body).digest()
