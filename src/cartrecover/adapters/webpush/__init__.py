"""Web push with VAPID (RFC 8030, 8291, 8292) through pywebpush."""
