"""Wiring: build the platform's components from settings, in one place.

This is the only module that decides which backend plays each role; every
other module receives its collaborators. ``serve`` and the tests use it alike.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from kirana.collect.service import MAX_BATCH_BYTES, Collector
from kirana.config import Settings
from kirana.consumers.profiles import ProfileConsumer
from kirana.consumers.quarantine import QuarantineConsumer
from kirana.consumers.runner import Consumer, ConsumerThread
from kirana.eventlog.protocol import EventLog
from kirana.eventlog.records import event_record
from kirana.eventlog.segments import FileEventLog
from kirana.identity.engine import IdentityResolver
from kirana.identity.rules import Identifier, IdentityRules
from kirana.identity.store import SQLProfileStore
from kirana.lake.loader import LakeLoader
from kirana.privacy.erase import ErasureReport, Stores, erase_people
from kirana.privacy.participants import Participant
from kirana.privacy.suppression import SuppressionList
from kirana.privacy.targets import ErasureTarget
from kirana.process.channel import ChannelClosed
from kirana.profiles.realtime import RealtimeAudiences
from kirana.store.protocol import OperationalStore, Source
from kirana.store.sqlite import SQLiteStore

if TYPE_CHECKING:
    from kirana.process.channel import Channel
    from kirana.process.supervisor import WorkerSupervisor
    from kirana.profiles.refresh import RefreshReport

log = logging.getLogger(__name__)

T = TypeVar("T")
_SERVICE_LOCK = threading.RLock()


def _parts(records: list[bytes], max_bytes: int) -> list[list[bytes]]:
    """``records`` in order, split into runs of at most ``max_bytes`` (or one record)."""
    parts: list[list[bytes]] = [[]]
    size = 0
    for record in records:
        if parts[-1] and size + len(record) > max_bytes:
            parts.append([])
            size = 0
        parts[-1].append(record)
        size += len(record)
    return parts


#: Subsystems that plug into the platform. Each names a module with
#: ``attach(platform: Platform) -> None``, which registers the module's log
#: consumers (``platform.add_consumer``) and scheduled jobs
#: (``platform.schedule``). Consumers and jobs may run in another process than
#: the HTTP API, so they share state with routes only through stores and files.
EXTENSIONS: tuple[str, ...] = (
    "kirana.models.jobs.schedule",
    "kirana.destinations.extension",
    "kirana.syncs.extension",
    "kirana.serving.extension",
    "kirana.replication.service",
    "kirana.warehouse.schedule",
    "kirana.experiments.extension",
)

#: Subsystems that keep personal data of their own and take part in erasure (see
#: ``privacy/participants.py``). Each names a module with
#: ``participant(platform: Platform) -> Participant``; erasure runs them in the process
#: that calls ``Platform.erase`` (the API process), in this order, after the event log,
#: profile store and ``events`` table. Replicated tables are not here: they mirror the
#: customer's source databases, where an erasure belongs (and then replicates).
ERASURE: tuple[str, ...] = (
    "kirana.models.erasure",
    "kirana.serving.erasure",
    "kirana.experiments.erasure",
    "kirana.syncs.erasure",
    "kirana.destinations.erasure",
)


@dataclass
class ScheduledJob:
    """Work that runs every ``every_seconds`` inside ``kirana serve``."""

    name: str
    every_seconds: float
    run: Callable[[], object]
    last_error: str | None = None
    runs: int = 0


def open_store(settings: Settings) -> OperationalStore:
    return SQLiteStore(settings.store_path)


def open_profile_store(settings: Settings) -> SQLProfileStore:
    """The profile store the settings choose (each caller gets its own connection)."""
    profiles = settings.profiles
    if profiles.backend == "postgres":
        from kirana.identity.postgres_store import PostgresProfileStore

        return PostgresProfileStore(profiles.postgres_dsn, schema=profiles.postgres_schema)
    from kirana.identity.sqlite_store import SQLiteProfileStore

    return SQLiteProfileStore(settings.state_dir / "profiles.sqlite")


def identity_rules(settings: Settings) -> IdentityRules:
    rules = IdentityRules()
    return IdentityRules(
        priority=rules.priority,
        limits={**rules.limits, "user_id": settings.profiles.user_id_limit},
        trait_ids=rules.trait_ids,
    )


def open_log(settings: Settings) -> EventLog:
    """The event log for the process that appends (``log.backend``)."""
    if settings.log.backend == "nats":
        from kirana.eventlog.jetstream import JetStreamEventLog

        nats = settings.log
        return JetStreamEventLog(
            nats.nats_url,
            stream=nats.nats_stream,
            subject=nats.nats_subject,
            replicas=nats.nats_replicas,
            max_bytes=nats.nats_max_bytes_mb * 1024 * 1024,
            duplicate_window_seconds=nats.nats_duplicate_window_seconds,
            ack_timeout=nats.nats_ack_timeout_seconds,
        )
    return FileEventLog(settings.log_dir, segment_bytes=settings.log.segment_mb * 1024 * 1024)


def open_log_reader(settings: Settings) -> EventLog:
    """The event log for a consumer worker or extra API process: the segment files'
    read side, or a JetStream connection of its own (any process may read a stream)."""
    if settings.log.backend == "nats":
        return open_log(settings)
    from kirana.eventlog.reader import FileLogReader

    return FileLogReader(settings.log_dir)


class SourceCache:
    """Write-key lookups on the ingest and personalise paths.

    Known keys are read from the store on every request (a hashed point read, ~10 us) and
    never cached: a rotated-out, disabled or deleted source's key must stop working at
    once in every API process, and another process (the CLI) may make that change.
    Unknown keys are re-checked at most once a second, so a flood of bad keys does not
    hit the store; keys are random, so none is asked for before it exists.
    """

    def __init__(self, store: OperationalStore, negative_ttl: float = 1.0) -> None:
        self._store = store
        self._unknown: dict[str, float] = {}
        self._ttl = negative_ttl

    def __call__(self, write_key: str) -> Source | None:
        now = time.monotonic()
        if now - self._unknown.get(write_key, -self._ttl) < self._ttl:
            return None
        source = self._store.source_by_write_key(write_key)
        if source is None:
            if len(self._unknown) > 10_000:
                self._unknown.clear()
            self._unknown[write_key] = now
        return source


#: Which part of Kirana a process runs: everything (tests, CLI commands), the
#: HTTP API with the log's writer, the consumers and scheduled jobs, or an extra
#: API process (``kirana serve --api-processes N``: personalise answered there,
#: everything else relayed to the ``api`` process).
Role = Literal["all", "api", "worker", "replica"]


@dataclass
class Platform:
    """A running Kirana: store, log, collector and consumers.

    ``kirana serve`` runs two processes: role ``api`` (HTTP, collector, the
    log's writer) and role ``worker`` (consumers, scheduled jobs), so that
    consumer work does not take the interpreter lock from request handling.
    Role ``all`` runs everything in threads of one process (tests, CLI).
    With ``--api-processes N`` the ``api`` process also supervises N - 1
    ``replica`` processes (``kirana.process.replica``) listening on the same port.
    """

    settings: Settings
    store: OperationalStore
    log: EventLog
    collector: Collector | None
    profiles: SQLProfileStore
    suppression: SuppressionList
    role: Role = "all"
    channel: Channel | None = None
    worker: WorkerSupervisor | None = None
    replicas: list[WorkerSupervisor] = field(default_factory=list)
    consumers: dict[str, ConsumerThread] = field(default_factory=dict)
    resolver: IdentityResolver | None = None
    jobs: dict[str, ScheduledJob] = field(default_factory=dict)
    services: dict[str, Any] = field(default_factory=dict)
    _closers: list[Callable[[], None]] = field(default_factory=list)
    _erasers: list[tuple[str, Participant]] = field(default_factory=list)
    _stopping: threading.Event = field(default_factory=threading.Event)
    _refresh_lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def open(
        cls, settings: Settings, role: Role = "all", channel: Channel | None = None
    ) -> Platform:
        """Build the components ``role`` runs (see the class docstring)."""
        from kirana.redaction import install_log_scrubbing, remember, secrets_in

        install_log_scrubbing()  # no log line shows a credential, whoever writes it
        nats_urls = settings.log.nats_url.replace(",", " ")  # a cluster: one URL at a time
        remember(
            secrets_in(f"{settings.warehouse.dsn} {settings.profiles.postgres_dsn} {nats_urls}")
        )
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        store = open_store(settings)
        if role in ("worker", "replica"):
            event_log: EventLog = open_log_reader(settings)
        else:
            event_log = open_log(settings)
        profile_reader = open_profile_store(settings)
        suppression = SuppressionList(
            profile_reader.suppressed,
            identity_rules(settings),
            version=profile_reader.suppression_version,
        )
        collector = None
        if role in ("all", "api"):
            collector = Collector(
                event_log,
                SourceCache(store),
                max_pending_bytes=settings.log.max_pending_mb * 1024 * 1024,
                suppressed=suppression.event,
                judging=suppression.judging,
            )
        platform = cls(
            settings, store, event_log, collector, profile_reader, suppression, role, channel
        )
        if role == "api":
            from kirana.process.supervisor import WorkerSupervisor

            platform.worker = WorkerSupervisor(
                settings.model_dump_json(), {"emit": platform._append_for_worker}
            )
            return platform
        if role == "replica":  # personalise reads stores; the rest is relayed
            return platform
        lake = settings.lake
        loader = LakeLoader(
            event_log,
            settings.lake_dir,
            settings.state_dir,
            max_batch=lake.max_batch_events,
            linger=lake.linger_seconds,
            compact_every=lake.compact_every_commits,
            dedupe_days=lake.dedupe_days,
            vacuum_retention_hours=lake.vacuum_retention_hours,
        )
        writer_store = open_profile_store(settings)
        platform.resolver = IdentityResolver(writer_store, identity_rules(settings))
        profiles = ProfileConsumer(
            event_log,
            writer_store,
            platform.resolver,
            RealtimeAudiences(writer_store, platform.emit),
        )
        for consumer in (loader, QuarantineConsumer(event_log, store), profiles):
            platform.add_consumer(consumer)
        for module in EXTENSIONS:
            importlib.import_module(module).attach(platform)
        return platform

    def add_consumer(self, consumer: Consumer) -> None:
        """Run ``consumer`` over the event log while the platform runs."""
        if consumer.name in self.consumers:
            raise ValueError(f"a consumer named {consumer.name!r} is already registered")
        self.consumers[consumer.name] = ConsumerThread(self.log, consumer)

    def schedule(self, name: str, every_seconds: float, run: Callable[[], object]) -> None:
        """Run ``run`` every ``every_seconds`` (first run after one period); errors are logged."""
        if every_seconds <= 0:
            return
        self.jobs[name] = ScheduledJob(name, every_seconds, run)

    def service(self, name: str, factory: Callable[[], T]) -> T:
        """A per-process singleton (built on first use; closed with the platform if it can be)."""
        with _SERVICE_LOCK:
            if name not in self.services:
                made = factory()
                self.services[name] = made
                close = getattr(made, "close", None)
                if callable(close):
                    self._closers.append(close)
            return self.services[name]

    def on_close(self, fn: Callable[[], None]) -> None:
        """Call ``fn`` when the platform closes (after the consumers stop)."""
        self._closers.append(fn)

    def on_erase(self, name: str, participant: Participant) -> None:
        """Also run ``participant`` when a person is erased (after those in ``ERASURE``)."""
        self._erasers.append((name, participant))

    def add_api_replicas(self, count: int, primary_socket: str) -> None:
        """Supervise ``count`` extra API processes (started with the platform) that share
        this process's port and relay what they do not serve to ``primary_socket``."""
        from kirana.process.replica import run_replica
        from kirana.process.supervisor import WorkerSupervisor

        handlers = {"emit": self._append_for_worker}
        for index in range(1, count + 1):
            self.replicas.append(
                WorkerSupervisor(
                    self.settings.model_dump_json(),
                    handlers,
                    target=run_replica,
                    args=(index, primary_socket),
                    label=f"API process {index}",
                    process_name=f"kirana-api-{index}",
                )
            )

    def start(self) -> None:
        for replica in self.replicas:
            replica.start()
        if self.worker is not None:
            self.worker.start()
            return
        for thread in self.consumers.values():
            thread.start()
        threading.Thread(target=self._housekeeping, name="log-retention", daemon=True).start()
        if self.settings.segments.refresh_minutes > 0:
            threading.Thread(
                target=self._scheduled_refresh, name="segment-refresh", daemon=True
            ).start()
        for job in self.jobs.values():
            threading.Thread(
                target=self._run_job, args=(job,), name=f"job-{job.name}", daemon=True
            ).start()

    def _run_job(self, job: ScheduledJob) -> None:
        while not self._stopping.wait(job.every_seconds):
            try:
                job.run()
                job.runs += 1
                job.last_error = None
            except Exception as exc:  # the next period retries
                from kirana.redaction import remembered, scrub

                job.last_error = scrub(f"{type(exc).__name__}: {exc}", remembered())
                log.exception("scheduled job %s failed", job.name)

    def _housekeeping(self, every: float = 60.0) -> None:
        """Delete log segments that every consumer has passed and retention allows."""
        keep = self.settings.log.retention_hours * 3600
        while not self._stopping.wait(every):
            oldest = min((t.consumer.position() for t in self.consumers.values()), default=0)
            try:
                freed = self.log.trim(oldest, min_age_seconds=keep)
            except OSError:
                log.exception("event log retention failed; will retry")
                continue
            if freed:
                log.info("event log: freed %d bytes of consumed segments", freed)

    def drain(self, timeout: float = 60.0) -> bool:
        """Wait until every consumer has caught up with the log (as it is now)."""
        if self.worker is None:
            return all(t.drain(timeout) for t in self.consumers.values())
        target = self.log.end_offset
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                status = self.worker.call("status", timeout=max(0.1, deadline - time.monotonic()))
            except (ChannelClosed, RuntimeError, TimeoutError):  # restarting: ask again
                time.sleep(0.2)
                continue
            if all(c["position"] >= target for c in status.values()):
                return True
            time.sleep(0.05)
        return False

    def consumer_status(self) -> dict[str, dict[str, Any]]:
        """Per consumer: position, lag, error count and last error (wherever it runs)."""
        if self.worker is not None:
            try:
                return self.worker.call("status", timeout=2)
            except (ChannelClosed, TimeoutError):
                return {
                    "worker": {
                        "position": 0,
                        "lag": self.log.lag(0),
                        "errors": self.worker.restarts + self.worker.spawn_failures,
                        "last_error": f"the consumer worker is not running "
                        f"(last exit code {self.worker.last_exit}"
                        + (
                            f"; last start failed: {self.worker.last_spawn_error}"
                            if self.worker.last_spawn_error
                            else ""
                        )
                        + "); it is being restarted",
                    }
                }
        return {
            name: {
                "position": t.consumer.position(),
                "lag": self.log.lag(t.consumer.position()),
                "errors": t.errors,
                "last_error": t.last_error,
            }
            for name, t in self.consumers.items()
        }

    def forget_identities(self) -> None:
        """Drop cached identity look-ups (after an erasure), wherever resolution runs and in
        every API process (their profile caches, suppression lists, queued decisions)."""
        for replica in self.replicas:
            with contextlib.suppress(ChannelClosed, TimeoutError):  # restarting: loads afresh
                replica.call("forget", timeout=30)
        if self.role == "replica":
            self.forget_served()
            return
        if self.worker is not None:
            # a worker that is (re)starting loads suppression and caches afresh
            with contextlib.suppress(ChannelClosed, TimeoutError):
                self.worker.call("forget", timeout=30)
        elif self.resolver is not None:
            self.resolver.forget()
            self.suppression.reload()  # the worker's copy: see new erasures at once

    def forget_served(self) -> None:
        """An extra API process's part of an erasure: reload the suppression list, drop
        cached profiles and logged-exposure keys, and hand over queued decisions now (so
        the erasure that follows deletes them too)."""
        self.suppression.reload()
        from kirana.serving.extension import SERVICE as PERSONALISE

        personalise = self.services.get(PERSONALISE)
        if personalise is not None:
            personalise.service.profiles.forget()
            personalise.decisions.flush()
        experiments = self.services.get("experiments")
        if experiments is not None:
            experiments.assigner.forget_known()

    def _append_for_worker(self, payloads: list[bytes]) -> list[int]:
        """The worker's derived events, appended by this process (the log's writer).

        Judged here again, under the erasure gate: the worker's own list may be a moment
        behind an erasure that has just begun (privacy.gate)."""
        with self.suppression.judging():
            kept = [p for p in payloads if not self.suppression.record(p)]
            return self.log.append_sync(kept) if kept else []

    def erase(self, identifier: Identifier) -> ErasureReport:
        """Erase the person holding ``identifier`` (typed) everywhere Kirana writes."""
        return self.erase_many([ErasureTarget(identifier[1], identifier[0])])

    def erase_many(self, targets: list[ErasureTarget]) -> ErasureReport:
        """Erase these people everywhere Kirana writes, each store rewritten once for all."""
        stores = Stores(
            self.profiles,
            self.log,
            self.settings.lake_dir,
            identity_rules(self.settings),
            quarantine_delete=self.store.delete_quarantined_containing,
            drain=lambda: self.drain(timeout=120),
            suppress=self._suppressed,
            forget=self.forget_identities,
            participants=self.erasure_participants(),
        )
        return erase_people(stores, targets)

    def erasure_participants(self) -> list[tuple[str, Participant]]:
        """Every subsystem's erasure step, by name (``ERASURE`` then ``on_erase``)."""
        found = [
            (module.rsplit(".", 2)[-2], importlib.import_module(module).participant(self))
            for module in ERASURE
        ]
        return found + self._erasers

    def _suppressed(self, identities: list[Identifier], grace_seconds: float = 60.0) -> None:
        """Suppress in every process, then wait until no event judged before is in flight."""
        generation = self.suppression.add(identities)
        self.forget_identities()
        if not self.suppression.wait_for_judgements(generation, grace_seconds):
            raise RuntimeError("requests judged before the erasure did not finish; retry it")

    def emit(self, events: list[dict]) -> None:
        """Append Kirana's own derived events (audience changes, …) to the event log.

        Events about erased (suppressed) people are dropped, as the collector drops theirs:
        a reverse-ETL write-back or any other derived event must not bring them back.
        """
        suppression = self.suppression
        with suppression.judging():  # an erasure waits for events judged before it
            kept = [e for e in events if not suppression.event(e)]
            if not kept:
                return
            records = [event_record(e) for e in kept]
            # appends no larger than a tracking request's: one append is one JetStream
            # message (log.backend = "nats"); a retried run re-emits the same messageIds
            for part in _parts(records, MAX_BATCH_BYTES):
                if self.channel is not None:  # a worker: the API process owns the writer
                    self.channel.call("emit", part, timeout=None)  # and judges them again
                else:
                    self.log.append_sync(part)

    def refresh_segments(self, full: bool = False) -> RefreshReport:
        """Recompute computed traits and audiences (one run at a time, own connection)."""
        from kirana.profiles.refresh import SegmentRefresher

        if self.worker is not None:  # one process refreshes, so runs never overlap
            return self.worker.call("refresh", full, timeout=None)

        with self._refresh_lock:
            store = open_profile_store(self.settings)
            try:
                return SegmentRefresher(store, self.settings.lake_dir, self.emit).refresh(full=full)
            finally:
                store.close()

    def _scheduled_refresh(self) -> None:
        every = self.settings.segments.refresh_minutes * 60
        while not self._stopping.wait(every):
            try:
                report = self.refresh_segments()
                log.info("segments refreshed: %s", report)
            except Exception:  # the previous values stay; the next run retries
                log.exception("scheduled segment refresh failed")

    def close(self) -> None:
        self._stopping.set()
        for replica in self.replicas:  # first: they relay to this process and log through it
            replica.stop()
        if self.worker is not None:
            self.worker.stop()
        for thread in self.consumers.values():
            thread.stop()
        for close in reversed(self._closers):
            try:
                close()
            except Exception:
                log.exception("closing %r failed", close)
        self.log.close()
        self.store.close()
        self.suppression.close()  # its periodic check reads through self.profiles
        self.profiles.close()
