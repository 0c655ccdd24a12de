-- The ledger on PostgreSQL. Nothing in shiplog ever updates or deletes a
-- row of `events`, `tree_hashes` or `checkpoints`.
--
-- Times, data and links are kept as the text shiplog wrote, as in the
-- SQLite store, so that a ledger moved between stores keeps every record,
-- and so every leaf hash, byte for byte.

-- One row per recorded event, in the one global order.
CREATE TABLE events (
    seq            BIGINT PRIMARY KEY CHECK (seq >= 0),  -- global order, gap-free, from 0
    id             UUID   NOT NULL UNIQUE,               -- the idempotency key
    type           TEXT   NOT NULL,
    stream         TEXT   NOT NULL,
    stream_version BIGINT NOT NULL CHECK (stream_version >= 0),
    occurred_at    TEXT   NOT NULL,                      -- RFC 3339, UTC
    recorded_at    TEXT   NOT NULL,                      -- RFC 3339, UTC, microseconds, non-decreasing along seq
    recorded_by    TEXT   NOT NULL,
    actor          TEXT   NOT NULL,
    source         TEXT,
    data           TEXT   NOT NULL,                      -- JSON object
    links          TEXT,                                 -- JSON array, NULL when none
    digest         BYTEA  NOT NULL,                      -- SHA-256 of the submitted content (idempotency)
    leaf_hash      BYTEA  NOT NULL,                      -- SHA-256(0x00 || JCS(record))
    UNIQUE (stream, stream_version)
);

-- Reads by type go forward in seq order.
CREATE INDEX events_type_seq ON events (type, seq);

-- The Merkle tree's stored hashes in the layout of Go's sumdb/tlog: for
-- leaf n, the leaf hash and the roots of the subtrees it completes, at
-- stored-hash index StoredHashIndex(0, n) onwards.
CREATE TABLE tree_hashes (
    idx  BIGINT PRIMARY KEY,
    hash BYTEA  NOT NULL
);

-- Every checkpoint the server signed.
CREATE TABLE checkpoints (
    size      BIGINT PRIMARY KEY,
    root      BYTEA  NOT NULL,
    note      TEXT   NOT NULL,
    signed_at TEXT   NOT NULL
);
