CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    store_id INTEGER NOT NULL,
    message_id TEXT NOT NULL,
    body BLOB NOT NULL,
    UNIQUE (store_id, message_id)
);
