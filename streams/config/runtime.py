"""shaftwatch.yaml: the runtime — Kafka, topics, HTTP, ingest partners, notifications,
operators, store and data directories, demo feeds. Secrets are never here: only the names
of the environment variables that hold them."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from streams.config.base import Section


class LocalBrokerSettings(Section):
    """The single-node Kafka broker started when no cluster is configured."""

    kafka_version: str = "4.1.1"
    scala_version: str = "2.13"
    host: Literal["127.0.0.1"] = "127.0.0.1"
    port: int = Field(9092, ge=1024, le=65535)
    controller_port: int = Field(9093, ge=1024, le=65535)
    heap_mb: int = Field(512, ge=128)
    start_timeout_s: float = Field(90.0, gt=0)


class KafkaSecuritySettings(Section):
    """How every client (workers, server, gateways, feeders, admin) reaches the cluster.
    PLAINTEXT only on a trusted network, such as the local broker on loopback; a county
    cluster on a network others share: SASL_SSL, a SCRAM user over TLS."""

    protocol: Literal["PLAINTEXT", "SSL", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["SCRAM-SHA-256", "SCRAM-SHA-512"] = "SCRAM-SHA-512"
    username: str | None = Field(None, min_length=1, max_length=255)
    # The password is a secret: read from the environment variable named here.
    password_env: str = Field("KAFKA_SASL_PASSWORD", pattern=r"^[A-Z_][A-Z0-9_]*$")
    # The CA that signed the brokers' certificates (PEM); none: the system's trusted CAs.
    ca_file: str | None = None
    # Off only for a cluster reached by an address its certificates do not name.
    check_hostname: bool = True

    @model_validator(mode="after")
    def _sasl_needs_a_user(self) -> KafkaSecuritySettings:
        if self.protocol == "SASL_SSL" and not self.username:
            raise ValueError("protocol SASL_SSL needs a username (its password comes from password_env)")
        return self


class KafkaSettings(Section):
    # None means: start the local broker. KAFKA_BOOTSTRAP in the environment wins.
    bootstrap: str | None = None
    security: KafkaSecuritySettings = KafkaSecuritySettings()
    local: LocalBrokerSettings = LocalBrokerSettings()


class TopicSettings(Section):
    # Prepended to every topic name: several environments (or test runs) can share one
    # cluster without reading each other's data. Empty in production by default.
    prefix: str = Field("", pattern=r"^[a-zA-Z0-9._-]*$")
    partitions: int = Field(4, ge=1, le=1024)
    replication: int = Field(1, ge=1, le=7)
    # Raw topics are the system's memory of what was accepted; keep them a week.
    retention_hours: int = Field(168, ge=1)


class AppSettings(Section):
    id: str = Field("shaftwatch", pattern=r"^[a-z][a-z0-9_-]*$")
    processing_guarantee: Literal["at_least_once"] = "at_least_once"
    store: Literal["memory://"] = "memory://"
    topics: TopicSettings = TopicSettings()
    workers: int = Field(1, ge=1, le=16)
    worker_web_host: str = "127.0.0.1"  # 0.0.0.0 in a container, so Prometheus can scrape
    worker_web_port: int = Field(6066, ge=1024, le=65535)
    # How long the worker's producer lets a batch fill before sending it. Faust's default, 0,
    # sends every signal and presence as its own produce request as soon as the sender is
    # free: on a fence backlog 5 ms saved the broker a quarter of its CPU (the worker's rate
    # did not change; README). The agents never wait for one send (outputs are acknowledged
    # at the commit), so a few ms cost an alert a few ms and a commit at most as much.
    producer_linger_ms: int = Field(5, ge=0, le=1000)


class HttpSettings(Section):
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=1024, le=65535)
    # `shaftwatch run` gives its demo feeders /health and /metrics on this port and the next two.
    feeder_ops_port: int = Field(6071, ge=1024, le=65533)


class IngestSource(Section):
    """A partner allowed to push data over HTTP. Its token is a secret: it is read from
    the environment variable named here, never written in a config file."""

    id: str = Field(pattern=r"^[A-Za-z0-9_.-]{2,64}$")
    feed: Literal["meters", "fences"]
    token_env: str = Field(pattern=r"^[A-Z_][A-Z0-9_]*$")


class IngestSettings(Section):
    max_rows: int = Field(100_000, ge=1)  # per request
    rows_per_message: int = Field(500, ge=1, le=10_000)  # readings per Kafka message
    sources: list[IngestSource] = []


class NotifyChannel(Section):
    name: Literal["webhook", "sms"]
    url: str = Field(pattern=r"^https?://")
    token_env: str | None = Field(None, pattern=r"^[A-Z_][A-Z0-9_]*$")  # the credential, from the environment
    recipients: list[str] = []  # for the SMS gateway: duty phones of the patrol team


class NotifySettings(Section):
    console_url: str = "http://127.0.0.1:8080"  # put in messages, so a tap opens the incident
    max_attempts: int = Field(5, ge=1, le=20)
    backoff_s: float = Field(1.0, gt=0)
    channels: list[NotifyChannel] = []


Role = Literal["patrol", "ops", "admin"]  # alerts.auth.ROLES: each can do what the one before can


class ApiClient(Section):
    """A machine client of the console API (a hotline system, a dashboard): its token comes
    from the environment variable named, never from a file. People sign in with accounts."""

    name: str = Field(min_length=1)
    token_env: str = Field(pattern=r"^[A-Z_][A-Z0-9_]*$")
    role: Role = "patrol"


class ConsoleSettings(Section):
    session_hours: float = Field(12.0, gt=0, le=24 * 30)  # a sign-in lasts this long
    secure_cookies: bool = False  # true behind HTTPS: the session cookie is then never sent in clear
    # An XYZ tile server for the map's background, e.g. a county's own; none: shafts on a plain grid.
    map_tile_url: str | None = Field(None, pattern=r"^https?://.*\{z\}.*\{x\}.*\{y\}")


class MailRelay(Section):
    """A mail relay of the county's network (plain SMTP, as an office relay takes it)."""

    host: str = Field(min_length=1)
    port: int = Field(25, ge=1, le=65535)
    sender: str = Field(pattern=r"^[^@\s]+@[^@\s]+$")
    recipients: list[str] = Field(min_length=1)


class WeeklyReportSettings(Section):
    """The weekly ledger list (台账清单): sent by the worker on this local weekday and hour,
    to a webhook and/or by mail; neither configured: made on demand only."""

    weekday: int = Field(3, ge=1, le=7)  # ISO: 1 Monday .. 7 Sunday; county offices want it on Wednesday
    hour: int = Field(9, ge=0, le=23)  # local time
    webhook_url: str | None = Field(None, pattern=r"^https?://")
    webhook_token_env: str | None = Field(None, pattern=r"^[A-Z_][A-Z0-9_]*$")
    mail: MailRelay | None = None


class ReportSettings(Section):
    weekly: WeeklyReportSettings = WeeklyReportSettings()


class DemoUser(Section):
    username: str = Field(pattern=r"^[a-z][a-z0-9._-]{1,63}$")
    role: Role
    display_name: str = ""


class DemoSettings(Section):
    footage_dir: str = "../shared/data/intel_sample_videos"
    meter_history_days: int = Field(7, ge=0, le=60)
    fence_passers_per_hour: float = Field(6.0, ge=0)
    seed: int = 7
    # `shaftwatch run` with demo feeds gives these accounts a one-time password for the run.
    users: list[DemoUser] = [
        DemoUser(username="duty", role="patrol", display_name="值班员 duty officer"),
        DemoUser(username="patrol-lead", role="patrol", display_name="巡逻队长 patrol lead"),
        DemoUser(username="ops", role="ops", display_name="运维 ops"),
        DemoUser(username="admin", role="admin", display_name="管理员 admin"),
    ]


class RuntimeSettings(Section):
    data_dir: str = "var"
    store_url: str | None = None  # None: sqlite file in data_dir
    evidence_dir: str | None = None  # None: data_dir/evidence
    model_path: str = "var/models/nanodet-m-coco-416-int8.onnx"  # built by `make model` (README, "The model")
    pseudonym_key_env: str = "SHAFTWATCH_PSEUDONYM_KEY"
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    config_reload_s: float = Field(10.0, ge=0)  # a worker looks for changed configs this often; 0: never
    # The leader closes quiet incidents and escalates unacknowledged ones this often.
    incident_housekeeping_s: float = Field(30.0, gt=0)
    # Workers look for silent meters this often, judging each partition by the stream
    # time it had one check before.
    silence_check_s: float = Field(60.0, gt=0)
    kafka: KafkaSettings = KafkaSettings()
    app: AppSettings = AppSettings()
    http: HttpSettings = HttpSettings()
    ingest: IngestSettings = IngestSettings()
    notify: NotifySettings = NotifySettings()
    console: ConsoleSettings = ConsoleSettings()
    reports: ReportSettings = ReportSettings()
    api_clients: list[ApiClient] = []
    demo: DemoSettings = DemoSettings()
