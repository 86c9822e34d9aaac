"""threadline: a self-hostable conversation backend for AI agents."""

__version__ = "0.1.0"
