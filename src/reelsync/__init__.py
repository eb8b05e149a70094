"""reelsync: open, self-hosted sync of production assets between hq and remote sites."""

__all__ = ["__version__"]

__version__ = "0.1.0"
