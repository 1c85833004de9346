"""Erasure of a person (right to be forgotten) and suppression of their future events."""
