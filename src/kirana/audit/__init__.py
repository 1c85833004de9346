"""The audit log of management changes: who changed what, when (docs/access.md)."""
