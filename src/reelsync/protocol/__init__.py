"""reelsync.protocol."""
