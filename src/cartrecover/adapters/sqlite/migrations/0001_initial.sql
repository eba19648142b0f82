CREATE TABLE IF NOT EXISTS stores (
    store_id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    write_key TEXT NOT NULL UNIQUE,
    admin_key_hash TEXT NOT NULL UNIQUE,
    body BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS checkpoints (consumer TEXT PRIMARY KEY, seq INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS dead_letters (
    consumer TEXT NOT NULL, seq INTEGER NOT NULL, reason TEXT NOT NULL, PRIMARY KEY (consumer, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS carts (
    store_id INTEGER NOT NULL,
    cart_id TEXT NOT NULL,
    shopper_id TEXT NOT NULL,
    status TEXT NOT NULL,
    last_activity_us INTEGER NOT NULL,
    body BLOB NOT NULL,
    PRIMARY KEY (store_id, cart_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS carts_by_shopper ON carts (store_id, shopper_id, status);
CREATE INDEX IF NOT EXISTS carts_by_status ON carts (store_id, status, cart_id);
CREATE TABLE IF NOT EXISTS cart_refs (
    store_id INTEGER NOT NULL, ref TEXT NOT NULL, cart_id TEXT NOT NULL,
    PRIMARY KEY (store_id, ref)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS cart_variants (
    store_id INTEGER NOT NULL, cart_id TEXT NOT NULL, experiment TEXT NOT NULL, variant TEXT NOT NULL,
    PRIMARY KEY (store_id, cart_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS cart_variants_by_experiment ON cart_variants (store_id, experiment, variant);
CREATE TABLE IF NOT EXISTS timeline (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    store_id INTEGER NOT NULL, cart_id TEXT NOT NULL, at_us INTEGER NOT NULL, kind TEXT NOT NULL, detail BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS timeline_by_cart ON timeline (store_id, cart_id, at_us);
CREATE TABLE IF NOT EXISTS timers (
    store_id INTEGER NOT NULL, cart_id TEXT NOT NULL, kind TEXT NOT NULL, due_us INTEGER NOT NULL,
    PRIMARY KEY (store_id, cart_id, kind)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS timers_by_due ON timers (due_us);
CREATE TABLE IF NOT EXISTS identities (
    store_id INTEGER NOT NULL, kind TEXT NOT NULL, value TEXT NOT NULL, shopper_id TEXT NOT NULL,
    PRIMARY KEY (store_id, kind, value)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS identities_by_shopper ON identities (store_id, shopper_id);
CREATE TABLE IF NOT EXISTS shoppers (
    store_id INTEGER NOT NULL, shopper_id TEXT NOT NULL, created_seq INTEGER NOT NULL, body BLOB NOT NULL,
    PRIMARY KEY (store_id, shopper_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS shoppers_by_age ON shoppers (store_id, created_seq);
CREATE TABLE IF NOT EXISTS orders (
    store_id INTEGER NOT NULL, order_id TEXT NOT NULL, joined INTEGER NOT NULL, body BLOB NOT NULL,
    PRIMARY KEY (store_id, order_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS order_refs (
    store_id INTEGER NOT NULL, ref TEXT NOT NULL, order_id TEXT NOT NULL,
    PRIMARY KEY (store_id, ref, order_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS outbox (
    store_id INTEGER NOT NULL, step_id TEXT NOT NULL, cart_id TEXT NOT NULL, shopper_id TEXT NOT NULL,
    status TEXT NOT NULL, due_us INTEGER NOT NULL, lease_us INTEGER, sent_us INTEGER, body BLOB NOT NULL,
    PRIMARY KEY (store_id, step_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS outbox_due ON outbox (status, due_us);
CREATE INDEX IF NOT EXISTS outbox_leases ON outbox (status, lease_us);
CREATE INDEX IF NOT EXISTS outbox_by_cart ON outbox (store_id, cart_id);
CREATE INDEX IF NOT EXISTS outbox_sent ON outbox (store_id, shopper_id, sent_us);
CREATE TABLE IF NOT EXISTS suppressions (
    store_id INTEGER NOT NULL, channel TEXT NOT NULL, address TEXT NOT NULL, reason TEXT NOT NULL, at_us INTEGER NOT NULL,
    PRIMARY KEY (store_id, channel, address)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS decisions (
    store_id INTEGER NOT NULL, cart_id TEXT NOT NULL, at_us INTEGER NOT NULL, incentive REAL NOT NULL,
    body BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS decisions_by_time ON decisions (store_id, at_us);
CREATE INDEX IF NOT EXISTS decisions_by_cart ON decisions (store_id, cart_id);
CREATE TABLE IF NOT EXISTS models (
    store_id INTEGER NOT NULL, version INTEGER NOT NULL, trained_us INTEGER NOT NULL, active INTEGER NOT NULL,
    metrics TEXT NOT NULL, body BLOB NOT NULL, PRIMARY KEY (store_id, version)
);
