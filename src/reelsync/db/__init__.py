"""reelsync.db."""
