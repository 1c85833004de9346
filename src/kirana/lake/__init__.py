"""The lake: Delta tables under ``<data-dir>/lake/<name>``, queried with DuckDB.

``events`` is written by :mod:`kirana.lake.loader`; later stages add their own
tables beside it, and :mod:`kirana.lake.catalog` exposes them all by name.
"""
