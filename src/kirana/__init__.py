"""Kirana: an open-source personalisation platform."""

__version__ = "0.1.0"
