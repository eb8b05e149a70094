"""The domain: pure rules and records shared by every layer (no I/O, no ORM, no web)."""
