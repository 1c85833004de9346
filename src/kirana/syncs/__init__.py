"""Reverse ETL: rows from the lake (or an audience) sent to a destination, diffed."""
