"""Segmentation language: computed traits and audiences for the single customer view.

Definitions are plain JSON (so the API, the CLI and the profile store share
them) and are parsed once into typed, validated structs
(:mod:`~kirana.segments.definitions`). The same definition then runs two ways
that must agree: compiled to DuckDB SQL over the profile relations for batch
refreshes (:mod:`~kirana.segments.compile`), and evaluated in Python for one
profile when an event arrives (:mod:`~kirana.segments.realtime`).
:mod:`~kirana.segments.dependencies` orders refreshes and finds the events
that can move an audience. The language is described in ``docs/segments.md``.
"""
