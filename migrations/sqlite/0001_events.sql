-- The ledger. Nothing in shiplog ever updates or deletes a row of `events`.

-- Streams by name, numbered in the order they first appear, so that the
-- (stream, version) index grows at its end rather than at random places.
CREATE TABLE streams (
    stream_id INTEGER PRIMARY KEY,
    name      TEXT    NOT NULL UNIQUE
) STRICT;

-- One row per recorded event, in the one global order.
CREATE TABLE events (
    seq            INTEGER PRIMARY KEY,   -- global order, gap-free, from 0
    id             TEXT    NOT NULL,      -- client-chosen UUID: the idempotency key
                                          -- (unique: the writer keeps an id index in memory)
    type           TEXT    NOT NULL,
    stream_id      INTEGER NOT NULL REFERENCES streams (stream_id),
    stream_version INTEGER NOT NULL,      -- order within the stream, gap-free, from 0
    occurred_at    TEXT    NOT NULL,      -- RFC 3339, UTC
    recorded_at    TEXT    NOT NULL,      -- RFC 3339, UTC, microseconds, non-decreasing along seq
    recorded_by    TEXT    NOT NULL,
    actor          TEXT    NOT NULL,
    source         TEXT,
    data           TEXT    NOT NULL,      -- JSON object
    links          TEXT,                  -- JSON array, NULL when none
    digest         BLOB    NOT NULL       -- SHA-256 of the submitted content (idempotency)
) STRICT;

CREATE UNIQUE INDEX events_stream_version ON events (stream_id, stream_version);
-- No index on `type`: it would cost about a fifth of append throughput, and
-- reads by type scan forward in seq order until their page is full. Audit
-- queries by type are served by the in-memory projections.
