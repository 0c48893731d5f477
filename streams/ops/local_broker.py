"""A real single-node Apache Kafka broker (KRaft mode) for one machine and for tests.

Used only when no cluster is configured (no ``KAFKA_BOOTSTRAP``). The broker's jars are
Apache Kafka's own release from Maven Central (``org.apache.kafka:kafka_2.13`` and its
runtime dependencies), copied once by the machine's Maven into a cache directory outside
the repository. Its storage is formatted once and kept in the data directory, so a
restart keeps every topic and committed offset. It listens on 127.0.0.1 only.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import shutil
import socket
import subprocess
import time
import uuid
from pathlib import Path

from streams.config import LocalBrokerSettings
from streams.kafka.admin import metadata_ok
from streams.logs import ids
from streams.ops.processes import stop_process

log = logging.getLogger("shaftwatch.broker")


class BrokerError(RuntimeError):
    pass


def cache_root() -> Path:
    return Path(os.environ.get("SHAFTWATCH_CACHE") or Path.home() / ".cache" / "shaftwatch")


_POM = """<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>shaftwatch.local</groupId><artifactId>kafka-broker-jars</artifactId><version>1</version>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId><artifactId>kafka_{scala}</artifactId><version>{kafka}</version>
    </dependency>
    <!-- routes the broker's slf4j logging to log4j2, so server.log says what happened -->
    <dependency>
      <groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j-impl</artifactId><version>2.24.3</version>
    </dependency>
  </dependencies>
</project>
"""

_LOG4J2 = """Configuration:
  status: warn
  Appenders:
    Console:
      name: STDOUT
      PatternLayout:
        Pattern: "[%d] %p %m (%c)%n"
  Loggers:
    Root:
      level: INFO
      AppenderRef:
        - ref: STDOUT
    Logger:
      - name: kafka.log.LogCleaner
        level: WARN
      - name: org.apache.kafka.storage
        level: WARN
"""


def fetch_jars(settings: LocalBrokerSettings) -> Path:
    """Copy Kafka and its runtime dependencies from Maven Central into the cache, once."""
    target = cache_root() / f"kafka_{settings.scala_version}-{settings.kafka_version}"
    libs = target / "libs"
    done = target / ".complete"
    if done.exists():
        return libs
    if shutil.which("mvn") is None:
        raise BrokerError("Maven (mvn) is not installed; it is needed once to fetch Kafka from Maven Central")
    if shutil.which("java") is None:
        raise BrokerError("java is not installed; the local Kafka broker needs JDK 17")
    target.mkdir(parents=True, exist_ok=True)
    (target / "pom.xml").write_text(_POM.format(scala=settings.scala_version, kafka=settings.kafka_version))
    log.info("fetching Apache Kafka from Maven Central", extra=ids(kafka_version=settings.kafka_version, libs=str(libs)))
    proc = subprocess.run(
        ["mvn", "-q", "-B", "dependency:copy-dependencies", f"-DoutputDirectory={libs}", "-DincludeScope=runtime"],
        cwd=target, capture_output=True, text=True,
    )
    if proc.returncode != 0:
        raise BrokerError(
            "could not fetch Kafka from Maven Central with mvn "
            f"(exit {proc.returncode}):\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}"
        )
    if not any(libs.glob(f"kafka_{settings.scala_version}-*.jar")):
        raise BrokerError(f"mvn finished but no Kafka jar is in {libs}")
    done.write_text(settings.kafka_version)
    return libs


def port_open(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


class LocalKafkaBroker:
    """Start, wait for and stop one KRaft broker+controller process, by its PID."""

    def __init__(self, settings: LocalBrokerSettings, data_dir: Path):
        self.settings = settings
        self.data_dir = Path(data_dir)
        self.proc: subprocess.Popen | None = None

    @property
    def bootstrap(self) -> str:
        return f"{self.settings.host}:{self.settings.port}"

    @property
    def log_path(self) -> Path:
        return self.data_dir / "server.log"

    def _properties(self) -> Path:
        s = self.settings
        path = self.data_dir / "server.properties"
        path.write_text("\n".join([
            "process.roles=broker,controller",
            "node.id=1",
            f"controller.quorum.voters=1@{s.host}:{s.controller_port}",
            f"listeners=PLAINTEXT://{s.host}:{s.port},CONTROLLER://{s.host}:{s.controller_port}",
            f"advertised.listeners=PLAINTEXT://{s.host}:{s.port}",
            "controller.listener.names=CONTROLLER",
            "inter.broker.listener.name=PLAINTEXT",
            "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            f"log.dirs={self.data_dir / 'logs'}",
            # Topics are created by ShaftWatch with their partition counts, never by accident.
            "auto.create.topics.enable=false",
            "num.partitions=1",
            "offsets.topic.replication.factor=1",
            "offsets.topic.num.partitions=8",
            "transaction.state.log.replication.factor=1",
            "transaction.state.log.min.isr=1",
            "share.coordinator.state.topic.replication.factor=1",
            "share.coordinator.state.topic.min.isr=1",
            "group.initial.rebalance.delay.ms=0",
            "",
        ]))
        return path

    def _java(self, libs: Path, main: str, *args: str, heap: bool = False) -> list[str]:
        cmd = ["java"]
        if heap:
            cmd += [f"-Xmx{self.settings.heap_mb}m", f"-Xms{min(self.settings.heap_mb, 256)}m"]
        cmd += [
            f"-Dlog4j2.configurationFile={self.data_dir / 'log4j2.yaml'}",
            "-Djava.awt.headless=true",
            "-cp", f"{libs}/*", main, *args,
        ]
        return cmd

    def _format_once(self, libs: Path, props: Path) -> None:
        if (self.data_dir / "logs" / "meta.properties").exists():
            return
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        proc = subprocess.run(
            # "--cluster-id=" keeps an id that starts with "-" (base64) from reading as an option.
            self._java(libs, "kafka.tools.StorageTool", "format", f"--cluster-id={cluster_id}", "-c", str(props)),
            capture_output=True, text=True,
        )
        if proc.returncode != 0:
            raise BrokerError(f"formatting Kafka storage in {self.data_dir} failed:\n{proc.stdout}{proc.stderr}")
        log.info("formatted Kafka storage", extra=ids(data_dir=str(self.data_dir), cluster_id=cluster_id))

    def start(self) -> None:
        s = self.settings
        for port in (s.port, s.controller_port):
            if port_open(s.host, port):
                raise BrokerError(
                    f"something already listens on {s.host}:{port}. Stop it, or set KAFKA_BOOTSTRAP to use "
                    "that broker instead of starting one."
                )
        libs = fetch_jars(s)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        (self.data_dir / "log4j2.yaml").write_text(_LOG4J2)
        props = self._properties()
        self._format_once(libs, props)
        log_file = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            self._java(libs, "kafka.Kafka", str(props), heap=True),
            stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,  # Ctrl-C reaches us, and we stop the broker in order
        )
        log_file.close()
        (self.data_dir / "broker.pid").write_text(str(self.proc.pid))
        log.info("started Kafka", extra=ids(kafka_version=s.kafka_version, pid=self.proc.pid, bootstrap=self.bootstrap))

    def wait_ready(self) -> None:
        deadline = time.monotonic() + self.settings.start_timeout_s
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise BrokerError(f"Kafka exited with {self.proc.returncode}; see {self.log_path}")
            if port_open(self.settings.host, self.settings.port):
                try:
                    asyncio.run(metadata_ok(self.bootstrap))
                    return
                except Exception as exc:  # noqa: BLE001 - not ready yet, any reason
                    log.debug("broker not ready yet", extra=ids(error=repr(exc)))
            time.sleep(0.3)
        raise BrokerError(f"Kafka did not answer within {self.settings.start_timeout_s}s; see {self.log_path}")

    def stop(self, timeout: float = 30.0) -> None:
        """Controlled shutdown (SIGTERM), then SIGKILL if it does not finish in time."""
        if self.proc is None:
            return
        stop_process(self.proc, timeout)
        log.info("stopped Kafka", extra=ids(pid=self.proc.pid, rc=self.proc.returncode))
        self.proc = None
        (self.data_dir / "broker.pid").unlink(missing_ok=True)

    def __enter__(self) -> LocalKafkaBroker:
        self.start()
        try:
            self.wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
