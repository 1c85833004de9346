"""The warehouse: every lake table by name in ``kirana sql``, and incremental export to PostgreSQL.

Querying needs nothing here: :mod:`kirana.lake.catalog` names every Delta table
under the lake. :mod:`kirana.warehouse.export` copies chosen tables into a
PostgreSQL schema (the role Redshift plays in the post), only what changed.
"""
