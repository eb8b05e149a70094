"""reelsync.scheduler."""
