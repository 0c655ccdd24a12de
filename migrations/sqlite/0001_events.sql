-- The ledger: one row per recorded event, in the one global order.
-- Nothing in shiplog ever updates or deletes a row of this table.
CREATE TABLE events (
    seq            INTEGER PRIMARY KEY,   -- global order, gap-free, from 0
    id             TEXT    NOT NULL,      -- client-chosen UUID: the idempotency key
    type           TEXT    NOT NULL,
    stream         TEXT    NOT NULL,
    stream_version INTEGER NOT NULL,      -- order within the stream, gap-free, from 0
    occurred_at    TEXT    NOT NULL,      -- RFC 3339, UTC
    recorded_at    TEXT    NOT NULL,      -- RFC 3339, UTC, non-decreasing along seq
    recorded_by    TEXT    NOT NULL,
    actor          TEXT    NOT NULL,
    source         TEXT,
    data           TEXT    NOT NULL,      -- JSON object
    links          TEXT,                  -- JSON array, NULL when none
    digest         BLOB    NOT NULL       -- SHA-256 of the submitted content (idempotency)
) STRICT;

CREATE UNIQUE INDEX events_id ON events (id);
CREATE UNIQUE INDEX events_stream_version ON events (stream, stream_version);
CREATE INDEX events_type_seq ON events (type, seq);
