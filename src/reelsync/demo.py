"""reelsync demo: everything on one machine."""
