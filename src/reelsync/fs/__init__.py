"""reelsync.fs."""
