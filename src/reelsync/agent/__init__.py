"""reelsync.agent."""
