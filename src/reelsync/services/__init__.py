"""reelsync.services."""
