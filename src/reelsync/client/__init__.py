"""reelsync.client."""
