"""reelsync.server."""
