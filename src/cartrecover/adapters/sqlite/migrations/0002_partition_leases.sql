-- Partitioned consumers (issue 6): the layout each consumer runs, the workers alive, and which holds which
-- partition until when. Times are microseconds since the epoch, wall clock.
CREATE TABLE IF NOT EXISTS partition_layouts (
    consumer TEXT PRIMARY KEY, partitions INTEGER NOT NULL, floors TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS partition_workers (
    consumer TEXT NOT NULL, owner TEXT NOT NULL, partitions INTEGER NOT NULL, expires_us INTEGER NOT NULL,
    PRIMARY KEY (consumer, owner)
);
CREATE TABLE IF NOT EXISTS partition_leases (
    consumer TEXT NOT NULL, part INTEGER NOT NULL, owner TEXT NOT NULL, expires_us INTEGER NOT NULL,
    PRIMARY KEY (consumer, part)
);
