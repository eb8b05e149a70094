"""reelsync.engine."""
