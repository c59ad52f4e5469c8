"""The consumer's privacy rights, as the program honours them.

- `requests`: requests to know, delete and correct: intake, the verification record, the
  10-business-day and 45-day clocks (`calendar`), closing, the 24-month record;
- `metrics`: the §7102 metrics of a year and the §7101 record, as text, JSON or CSV (`cli`);
- `erasure`: a member's erasure with notice (Colorado Rule 6.05(E)), or at once; `erase_due` is the job;
- `subscribers`: erasing a subscriber who is not a member, the opt-out kept as a keyed hash;
- `api`: the HTTP routes; `schemas`, `examples`: their types and the OpenAPI examples.

The access export (`GET /v1/members/{id}/export`) and correction (`PATCH /v1/members/{id}`) that
staff answer access and correct requests with live with the members' routes.

The jobs a runner calls: `erasure.erase_due(engine)` (scheduled erasures, every minute) and
`requests.purge_expired(db)` (records past their 24 months, daily).
"""
