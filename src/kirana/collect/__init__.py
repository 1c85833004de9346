"""Segment-compatible event collection: decode, validate, normalise, append.

``schema`` and ``normalize`` are pure (no I/O) so they are fast to test and
reusable; ``service`` ties them to the event log and the source registry;
the HTTP layer in :mod:`kirana.api.routes.tracking` only adapts requests.
"""
