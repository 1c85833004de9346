"""Consumers of the event log, each in its own thread, each at-least-once.

A consumer reads from the position it committed last, makes its output
durable, then commits the new position; a crash in between replays the batch
and the consumer's own idempotency (messageId, log offset) absorbs it.
"""
