"""Real Apache Kafka (KRaft mode) on one machine: a single node for ``make run`` and the
tests, and a cluster of several nodes (``shaftwatch broker --nodes 3``, the ``cluster``
tests) with replication 3 and ``min.insync.replicas`` 2, as a county runs it.

The single node is used only when no cluster is configured (no ``KAFKA_BOOTSTRAP``). The broker's jars are
Apache Kafka's own release from Maven Central (``org.apache.kafka:kafka_2.13`` and its
runtime dependencies), copied once by the machine's Maven into a cache directory outside
the repository. Its storage is formatted once and kept in the data directory, so a
restart keeps every topic and committed offset. It listens on 127.0.0.1 only. Every node
of a local cluster is a broker and a controller (three controller voters, so one node can
be lost and the quorum stands), in a data directory of its own, formatted with the
cluster's one id.
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
from dataclasses import dataclass
from pathlib import Path

from aiokafka.admin import AIOKafkaAdminClient

from streams.config import LocalBrokerSettings
from streams.kafka.admin import metadata_ok
from streams.logs import ids
from streams.ops.processes import stop_process, terminate, wait_or_kill

log = logging.getLogger("shaftwatch.broker")


@dataclass(frozen=True)
class ScramTlsListener:
    """A second listener, SASL_SSL with SCRAM-SHA-512 users, as a county cluster's clients
    reach it (the plaintext listener stays for the brokers' own traffic on loopback).
    ``keystore_pem``: the broker's private key (PKCS#8, unencrypted) and certificate chain
    in one PEM file. ``users``: name -> password, stored as salted SCRAM hashes when the
    storage is formatted."""

    port: int
    keystore_pem: Path
    users: dict[str, str]


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


class _RunningWhileUsed:
    """``with broker:`` / ``with cluster:`` — started and ready inside, stopped after (also
    when the start fails half-way)."""

    def __enter__(self):
        try:
            self.start()
            self.wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class LocalKafkaBroker(_RunningWhileUsed):
    """Start, wait for and stop one KRaft broker+controller process, by its PID.

    Alone (the defaults) it is a cluster of one. As node ``node_id`` of a
    ``LocalKafkaCluster`` it is given the controller ``voters`` of every node, the
    ``replication`` of the internal topics and the ``cluster_id`` all nodes share."""

    def __init__(self, settings: LocalBrokerSettings, data_dir: Path, *, node_id: int = 1,
                 voters: str | None = None, replication: int = 1, cluster_id: str | None = None,
                 scram_tls: ScramTlsListener | None = None):
        self.settings = settings
        self.scram_tls = scram_tls
        self.data_dir = Path(data_dir)
        self.node_id = node_id
        self.voters = voters or f"{node_id}@{settings.host}:{settings.controller_port}"
        self.replication = replication
        self.cluster_id = cluster_id
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
        r = self.replication
        min_isr = min(2, r)  # with three copies, two must hold a write before it is acknowledged
        listeners = f"PLAINTEXT://{s.host}:{s.port}"
        secure: list[str] = []
        if self.scram_tls is not None:
            listeners += f",SASL_SSL://{s.host}:{self.scram_tls.port}"
            secure = [
                "sasl.enabled.mechanisms=SCRAM-SHA-512",
                "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config="
                "org.apache.kafka.common.security.scram.ScramLoginModule required;",
                "listener.name.sasl_ssl.ssl.keystore.type=PEM",
                f"listener.name.sasl_ssl.ssl.keystore.location={self.scram_tls.keystore_pem}",
                "ssl.enabled.protocols=TLSv1.3,TLSv1.2",
            ]
        path.write_text("\n".join([
            "process.roles=broker,controller",
            f"node.id={self.node_id}",
            f"controller.quorum.voters={self.voters}",
            f"listeners={listeners},CONTROLLER://{s.host}:{s.controller_port}",
            f"advertised.listeners={listeners}",
            "controller.listener.names=CONTROLLER",
            "inter.broker.listener.name=PLAINTEXT",
            "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SASL_SSL:SASL_SSL",
            *secure,
            f"log.dirs={self.data_dir / 'logs'}",
            # Topics are created by ShaftWatch with their partition counts, never by accident.
            "auto.create.topics.enable=false",
            "num.partitions=1",
            f"default.replication.factor={r}",
            f"min.insync.replicas={min_isr}",
            "unclean.leader.election.enable=false",
            f"offsets.topic.replication.factor={r}",
            "offsets.topic.num.partitions=8",
            f"transaction.state.log.replication.factor={r}",
            f"transaction.state.log.min.isr={min_isr}",
            f"share.coordinator.state.topic.replication.factor={r}",
            f"share.coordinator.state.topic.min.isr={min_isr}",
            "group.initial.rebalance.delay.ms=0",
            # A node that stops answering is fenced (and its leaderships moved) after 6 s.
            "broker.session.timeout.ms=6000",
            "broker.heartbeat.interval.ms=1000",
            "",
        ]))
        return path

    def _java(self, libs: Path, main: str, *args: str, heap: bool = False) -> list[str]:
        cmd = ["java"]
        if heap:
            # The whole heap from the start, as Kafka's own start script sizes it (-Xms = -Xmx),
            # and its pages touched at once: the broker's memory is known from its first
            # minute, and a soak that sees it grow sees a leak, not a heap filling its bound.
            size = f"{self.settings.heap_mb}m"
            cmd += [f"-Xmx{size}", f"-Xms{size}", "-XX:+AlwaysPreTouch"]
        cmd += [
            f"-Dlog4j2.configurationFile={self.data_dir / 'log4j2.yaml'}",
            "-Djava.awt.headless=true",
            "-cp", f"{libs}/*", main, *args,
        ]
        return cmd

    def _format_once(self, libs: Path, props: Path) -> None:
        if (self.data_dir / "logs" / "meta.properties").exists():
            return
        cluster_id = self.cluster_id or new_cluster_id()
        users = self.scram_tls.users.items() if self.scram_tls is not None else ()
        scram = [arg for name, password in users
                 for arg in ("--add-scram", f"SCRAM-SHA-512=[name={name},password={password}]")]
        proc = subprocess.run(
            # "--cluster-id=" keeps an id that starts with "-" (base64) from reading as an option.
            self._java(libs, "kafka.tools.StorageTool", "format", f"--cluster-id={cluster_id}", "-c", str(props),
                       *scram),
            capture_output=True, text=True,
        )
        if proc.returncode != 0:
            raise BrokerError(f"formatting Kafka storage in {self.data_dir} failed:\n{proc.stdout}{proc.stderr}")
        log.info("formatted Kafka storage", extra=ids(data_dir=str(self.data_dir), cluster_id=cluster_id,
                                                      node_id=self.node_id))

    def start(self) -> None:
        s = self.settings
        for port in (s.port, s.controller_port) + ((self.scram_tls.port,) if self.scram_tls else ()):
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
        log.info("started Kafka", extra=ids(kafka_version=s.kafka_version, pid=self.proc.pid, bootstrap=self.bootstrap,
                                            node_id=self.node_id))

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

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 30.0) -> None:
        """Controlled shutdown (SIGTERM), then SIGKILL if it does not finish in time."""
        if self.proc is None:
            return
        stop_process(self.proc, timeout)
        self._stopped()

    def kill(self) -> None:
        """SIGKILL, as a power cut does it: no controlled shutdown, nothing flushed."""
        if self.proc is None:
            return
        self.proc.kill()
        self.proc.wait()
        self._stopped()

    def _stopped(self) -> None:
        log.info("stopped Kafka", extra=ids(pid=self.proc.pid, rc=self.proc.returncode, node_id=self.node_id))
        self.proc = None
        (self.data_dir / "broker.pid").unlink(missing_ok=True)



def new_cluster_id() -> str:
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()


def node_ports(settings: LocalBrokerSettings, nodes: int) -> list[tuple[int, int]]:
    """(client port, controller port) of each node: the configured pair, then the next
    pairs up (9092/9093, 9094/9095, 9096/9097 by default)."""
    step = max(2, abs(settings.controller_port - settings.port) + 1)
    return [(settings.port + i * step, settings.controller_port + i * step) for i in range(nodes)]


class LocalKafkaCluster(_RunningWhileUsed):
    """Several KRaft nodes from the same jars on loopback ports: each is a broker and a
    controller voter; topics are replicated ``min(3, nodes)`` times and a write needs two
    in-sync copies. The nodes are stopped, killed and restarted one by one (by PID) for the
    fault tests; the cluster's storage is kept in ``data_dir`` like the single node's."""

    def __init__(self, settings: LocalBrokerSettings, data_dir: Path, nodes: int = 3,
                 ports: list[tuple[int, int]] | None = None):
        if nodes < 1:
            raise BrokerError("a cluster needs at least one node")
        self.settings = settings
        self.data_dir = Path(data_dir)
        ports = ports or node_ports(settings, nodes)
        if len(ports) != nodes:
            raise BrokerError(f"{nodes} nodes need {nodes} port pairs, got {len(ports)}")
        voters = ",".join(f"{i + 1}@{settings.host}:{controller}" for i, (_, controller) in enumerate(ports))
        self.replication = min(3, nodes)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        id_file = self.data_dir / "cluster.id"
        if not id_file.exists():
            id_file.write_text(new_cluster_id())
        cluster_id = id_file.read_text().strip()
        self.nodes = [
            LocalKafkaBroker(settings.model_copy(update={"port": port, "controller_port": controller}),
                             self.data_dir / f"node-{i + 1}", node_id=i + 1, voters=voters,
                             replication=self.replication, cluster_id=cluster_id)
            for i, (port, controller) in enumerate(ports)
        ]

    @property
    def bootstrap(self) -> str:
        return ",".join(node.bootstrap for node in self.nodes)

    @property
    def min_insync_replicas(self) -> int:
        return min(2, self.replication)

    def start(self) -> None:
        for node in self.nodes:
            for port in (node.settings.port, node.settings.controller_port):
                if port_open(node.settings.host, port):
                    raise BrokerError(f"something already listens on {node.settings.host}:{port}")
        for node in self.nodes:
            node.start()

    def wait_ready(self, timeout: float | None = None) -> None:
        """Every node answers and the cluster's metadata lists all of them."""
        deadline = time.monotonic() + (timeout or self.settings.start_timeout_s)
        for node in self.nodes:
            node.wait_ready()
        while time.monotonic() < deadline:
            try:
                if asyncio.run(cluster_size(self.bootstrap)) == len(self.nodes):
                    return
            except Exception as exc:  # noqa: BLE001 - not ready yet, any reason
                log.debug("cluster not complete yet", extra=ids(error=repr(exc)))
            time.sleep(0.5)
        raise BrokerError(f"the cluster did not list its {len(self.nodes)} nodes within the time allowed")

    def restart(self, index: int) -> None:
        """Start a stopped or killed node again and wait until it answers."""
        node = self.nodes[index]
        if node.running():
            raise BrokerError(f"node {node.node_id} is still running")
        node.start()
        node.wait_ready()

    def wait_in_sync(self, timeout: float = 120.0) -> None:
        """Every partition of every topic has all its replicas in sync again (after a node
        came back), so the next fault starts from a whole cluster."""
        deadline = time.monotonic() + timeout
        lagging: list[str] = []
        while time.monotonic() < deadline:
            try:
                lagging = asyncio.run(under_replicated(self.bootstrap))
                if not lagging:
                    return
            except Exception as exc:  # noqa: BLE001 - a node still coming back
                lagging = [repr(exc)]
            time.sleep(1.0)
        raise BrokerError(f"partitions still under-replicated after {timeout}s: {lagging[:5]}")

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM to every node at once (a node stopped alone would wait for a quorum the
        others no longer form), then SIGKILL what has not finished in time."""
        running = [node for node in self.nodes if node.proc is not None]
        for node in running:
            terminate(node.proc)
        deadline = time.monotonic() + timeout
        for node in running:
            wait_or_kill(node.proc, deadline)
            node._stopped()



async def cluster_size(bootstrap: str) -> int:
    """How many brokers the cluster's metadata lists."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=3000)
    await admin.start()
    try:
        return len((await admin.describe_cluster())["brokers"])
    finally:
        await admin.close()


async def under_replicated(bootstrap: str) -> list[str]:
    """``topic:partition`` of every partition whose in-sync replicas are fewer than its replicas."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5000)
    await admin.start()
    try:
        out = []
        for topic in await admin.describe_topics(list(await admin.list_topics())):
            for p in topic["partitions"]:
                if len(p["isr"]) < len(p["replicas"]):
                    out.append(f"{topic['topic']}:{p['partition']}")
        return out
    finally:
        await admin.close()
