"""Profiles as the rest of the platform sees them (identity + traits + lake history)."""
