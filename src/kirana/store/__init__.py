"""The operational store: sources, access tokens, quarantine, consumer state.

One small interface (:class:`kirana.store.protocol.OperationalStore`) with
SQLite as the embedded default; PostgreSQL joins with the profile store.
"""
