"""bootserver: zero-touch network boot for bare-metal fleets."""

__version__ = "0.1.0"
