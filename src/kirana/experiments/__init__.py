"""Experimentation: turning per-variation aggregates into decisions.

The statistics live in :mod:`kirana.experiments.stats`, a pure-function engine (no I/O) so that
the same maths serves the API, the CLI and offline notebooks, and can be tested against
reference implementations on identical inputs.
"""
