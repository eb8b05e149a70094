"""reelsync.notify."""
