"""The durable event log: everything the collector acknowledges, in order.

The collector appends; consumers (lake loader, quarantine, later identity and
delivery) read from their own committed positions. See ``protocol.EventLog``.
"""

from kirana.eventlog.protocol import EventLog, LogRecord, LogUnavailable

__all__ = ["EventLog", "LogRecord", "LogUnavailable"]
