-- The ledger as an RFC 6962 Merkle tree.

-- Each event's leaf hash: SHA-256(0x00 || JCS(record)).
ALTER TABLE events ADD COLUMN leaf_hash BLOB;

-- The tree's stored hashes, in the layout of Go's sumdb/tlog: for leaf n,
-- the leaf hash and the roots of the subtrees it completes, at stored-hash
-- index StoredHashIndex(0, n) onwards. Each commit writes the hashes it
-- made as one row: 32-byte hashes for the indexes first_idx,
-- first_idx + 1, … Never updated, never deleted.
CREATE TABLE tree_hashes (
    first_idx INTEGER PRIMARY KEY,
    hashes    BLOB    NOT NULL
) STRICT;

-- Every checkpoint the server signed: each is consistent with the ones
-- before it, or the server would not have signed it.
CREATE TABLE checkpoints (
    size      INTEGER PRIMARY KEY,
    root      BLOB    NOT NULL,
    note      TEXT    NOT NULL,
    signed_at TEXT    NOT NULL
) STRICT;
