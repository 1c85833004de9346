"""Starting (and finding) the Spark session the Spark engine runs its jobs in.

A session costs ~10-15 s to start (a JVM, then a Python gateway), so the engine starts
one lazily and keeps it until `close`. Spark allows one SparkContext per process: a
second engine in the same process gets the running session, and settings that only take
effect at JVM start (``spark.driver.memory``) are then ignored.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

#: Settings that suit one machine; anything in the engine's ``conf`` overrides them.
LOCAL_DEFAULTS: dict[str, str] = {
    "spark.driver.memory": "2g",
    "spark.sql.shuffle.partitions": "4",
    "spark.sql.session.timeZone": "UTC",
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    # list the snapshot's files on the driver: a Delta table names each file, so there is
    # nothing to discover, and the default launches a Spark job per read to list them
    "spark.sql.sources.parallelPartitionDiscovery.threshold": "1000000",
    # Arrow batches between the JVM and Python (toArrow, mapInArrow)
    "spark.sql.execution.arrow.pyspark.enabled": "true",
}


class JavaNotFoundError(RuntimeError):
    """Spark needs a Java runtime (17 or newer) and none was found."""


def java_available() -> bool:
    """Whether a ``java`` executable can be found (``JAVA_HOME`` or ``PATH``)."""
    home = os.environ.get("JAVA_HOME")
    if home and (Path(home) / "bin" / "java").exists():
        return True
    return shutil.which("java") is not None


def start_session(
    master: str, conf: Mapping[str, Any] | None = None, app_name: str = "kirana-models"
) -> SparkSession:
    """Start (or join) a session on ``master`` with `LOCAL_DEFAULTS` overridden by ``conf``."""
    if not java_available():
        raise JavaNotFoundError(
            "the Spark engine needs Java 17+: install a JDK (e.g. `apt install openjdk-17-jre`)"
            " or set JAVA_HOME, or use the embedded engine (models.engine = 'embedded')"
        )
    # Python workers (mapInArrow) must run this interpreter, which has numpy and pyarrow
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.master(master).appName(app_name)
    for key, value in {**LOCAL_DEFAULTS, **dict(conf or {})}.items():
        builder = builder.config(key, str(value))
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("ERROR")
    return session


def jvm_pid(session: SparkSession) -> int:
    """Process id of the session's JVM (the driver), e.g. to measure its memory."""
    return int(session.sparkContext._jvm.java.lang.ProcessHandle.current().pid())
