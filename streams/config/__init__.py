"""Configuration: one pydantic model per section, one YAML file per section.

The files live in one directory (``configs/`` by default, ``SHAFTWATCH_CONFIG_DIR``
to change it)::

    shaftwatch.yaml   runtime: Kafka, topics, HTTP, store, data dirs, demo feeds
    sites.yaml        the shaft ledger: sealed / closed shafts and their townships
    cameras.yaml      cameras, their zones and masks
    meters.yaml       power meters and the sites they feed
    fences.yaml       electronic-fence zones
    thresholds.yaml   detection and fusion thresholds

Unknown keys are errors. Every error names the file, the line, the key path and the
problem, so an ops person can fix a typo at 3 a.m. without reading Python.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from alerts.fusion import FusionRules
from detectors.camera import VisionRules
from detectors.fence import FenceRules
from detectors.fence import Zone as DetectorZone
from detectors.power import MeterSpec, PowerRules
from detectors.timeofday import LocalClock
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator, model_validator

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CONFIG_DIR = REPO_ROOT / "configs"


class Section(BaseModel):
    """Base of every config model: unknown keys are errors, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


# --------------------------------------------------------------------------- runtime


class LocalBrokerSettings(Section):
    """The single-node Kafka broker started when no cluster is configured."""

    kafka_version: str = "4.1.1"
    scala_version: str = "2.13"
    host: Literal["127.0.0.1"] = "127.0.0.1"
    port: int = Field(9092, ge=1024, le=65535)
    controller_port: int = Field(9093, ge=1024, le=65535)
    heap_mb: int = Field(512, ge=128)
    start_timeout_s: float = Field(90.0, gt=0)


class KafkaSettings(Section):
    # None means: start the local broker. KAFKA_BOOTSTRAP in the environment wins.
    bootstrap: str | None = None
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


class Operator(Section):
    """A person who may act on incidents; the token comes from the environment variable named."""

    name: str = Field(min_length=1)
    token_env: str = Field(pattern=r"^[A-Z_][A-Z0-9_]*$")


class DemoSettings(Section):
    footage_dir: str = "../shared/data/intel_sample_videos"
    meter_history_days: int = Field(7, ge=0, le=60)
    fence_passers_per_hour: float = Field(6.0, ge=0)
    seed: int = 7


class RuntimeSettings(Section):
    data_dir: str = "var"
    store_url: str | None = None  # None: sqlite file in data_dir
    evidence_dir: str | None = None  # None: data_dir/evidence
    model_path: str = "../shared/models/nanodet-m-coco-416.onnx"
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
    operators: list[Operator] = []
    demo: DemoSettings = DemoSettings()


# --------------------------------------------------------------------------- sites


class Person(Section):
    name: str = Field(min_length=1)
    role: str = Field(min_length=1)


class Site(Section):
    """One entry of the shaft ledger (台账)."""

    id: str = Field(pattern=r"^[A-Z0-9-]{2,32}$")
    name: str
    township: str
    lon: float = Field(ge=-180, le=180)
    lat: float = Field(ge=-90, le=90)
    status: Literal["sealed", "closed", "backfilled", "active_licensed"]
    sealed_on: str | None = Field(None, pattern=r"^\d{4}-\d{2}-\d{2}$")
    responsible: Person


class SitesFile(Section):
    county: str
    townships: list[str] = Field(min_length=1)
    sites: list[Site] = Field(min_length=1)

    @model_validator(mode="after")
    def _townships_known(self) -> SitesFile:
        for i, site in enumerate(self.sites):
            if site.township not in self.townships:
                raise _located(("sites", i, "township"), f"township {site.township!r} is not in townships")
        _unique(self.sites, "sites")
        return self


# --------------------------------------------------------------------------- cameras

Point = tuple[float, float]


def _check_polygon(points: list[Point]) -> list[Point]:
    if len(points) < 3:
        raise ValueError("a polygon needs at least 3 points")
    for x, y in points:
        if not (0.0 <= x <= 1.0 and 0.0 <= y <= 1.0):
            raise ValueError(f"point ({x}, {y}) is outside 0..1 (coordinates are normalized to the frame)")
    return points


class Zone(Section):
    """A polygon in normalized frame coordinates; an object is in it when its footpoint is."""

    name: str = Field(pattern=r"^[a-z0-9_]+$")
    polygon: list[Point]
    objects: list[Literal["person", "car", "truck", "bus", "motorcycle", "bicycle"]] = [
        "person", "car", "truck", "bus", "motorcycle", "bicycle",
    ]
    min_frames: int = Field(3, ge=1)
    loiter_s: float = Field(0.0, ge=0)

    @field_validator("polygon")
    @classmethod
    def _polygon(cls, v: list[Point]) -> list[Point]:
        return _check_polygon(v)


class Mask(Section):
    polygon: list[Point]
    applies_to: Literal["motion", "objects", "both"] = "both"

    @field_validator("polygon")
    @classmethod
    def _polygon(cls, v: list[Point]) -> list[Point]:
        return _check_polygon(v)


class Camera(Section):
    id: str = Field(pattern=r"^[A-Z0-9-]{2,32}$")
    site_id: str
    source: str = Field(description="RTSP/HTTP URL, video file or image folder; 'demo:' plays footage")
    fps: float = Field(1.0, gt=0, le=30)
    width: int = Field(1280, ge=64, le=7680)
    height: int = Field(720, ge=64, le=4320)
    jpeg_quality: int = Field(80, ge=10, le=100)
    zones: list[Zone] = Field(min_length=1)
    masks: list[Mask] = []


class CamerasFile(Section):
    cameras: list[Camera]

    @model_validator(mode="after")
    def _unique_ids(self) -> CamerasFile:
        _unique(self.cameras, "cameras")
        return self


# --------------------------------------------------------------------------- meters


class IrrigationPlan(Section):
    months: list[int] = Field(min_length=1)
    hours: tuple[int, int] = (6, 20)  # local hours [start, end)
    pump_kw: float = Field(gt=0)

    @field_validator("months")
    @classmethod
    def _months(cls, v: list[int]) -> list[int]:
        bad = [m for m in v if not 1 <= m <= 12]
        if bad:
            raise ValueError(f"months must be 1..12, got {bad}")
        return v


class Meter(Section):
    id: str = Field(pattern=r"^[A-Z0-9-]{2,32}$")
    site_id: str
    kind: Literal["mine_supply", "irrigation", "village", "workshop"]
    # A mine line the utility cut when the mine was closed: any draw is unexplained.
    expected_zero: bool = False
    rated_kw: float = Field(gt=0)
    irrigation: IrrigationPlan | None = None
    interval_s: int = Field(900, ge=60, le=3600)

    @model_validator(mode="after")
    def _consistent(self) -> Meter:
        if self.kind == "irrigation" and self.irrigation is None:
            raise _located(("irrigation",), "an irrigation meter needs an irrigation plan (months, hours, pump_kw)")
        if self.kind != "irrigation" and self.irrigation is not None:
            raise _located(("irrigation",), f"only irrigation meters have an irrigation plan, this one is {self.kind!r}")
        return self

    def spec(self) -> MeterSpec:
        """This meter as the power rules see it."""
        plan = self.irrigation
        return MeterSpec(
            meter_id=self.id, site_id=self.site_id, kind=self.kind, expected_zero=self.expected_zero,
            rated_kw=self.rated_kw, interval_s=self.interval_s,
            irrigation_months=tuple(plan.months) if plan else (), irrigation_hours=tuple(plan.hours) if plan else (0, 0),
            pump_kw=plan.pump_kw if plan else 0.0,
        )


class MetersFile(Section):
    utility: str
    meters: list[Meter]

    @model_validator(mode="after")
    def _unique_ids(self) -> MetersFile:
        _unique(self.meters, "meters")
        return self


# --------------------------------------------------------------------------- fences


class FenceZone(Section):
    id: str = Field(pattern=r"^[A-Z0-9-]{2,32}$")
    name: str
    site_ids: list[str] = Field(min_length=1)
    # Either a lon/lat polygon (outer ring, no holes) or a set of carrier cell ids.
    polygon: list[Point] | list[list[Point]] | None = None
    cells: list[str] | None = None
    active_hours: tuple[int, int] = (0, 24)  # local hours [start, end); (0, 24) = always

    @model_validator(mode="after")
    def _one_shape(self) -> FenceZone:
        if (self.polygon is None) == (self.cells is None):
            raise _located((), "a fence zone has either a polygon or cells, not both and not neither")
        if self.polygon is not None:
            problem = DetectorZone.polygon_problem(self.polygon)
            if problem:
                raise _located(("polygon",), problem)
        return self

    def zone(self) -> DetectorZone:
        """This zone as the fence rules see it."""
        return DetectorZone(self.id, tuple(self.site_ids), polygon=tuple(map(tuple, self.polygon)) if self.polygon else None,
                            cells=frozenset(self.cells or ()), active_hours=tuple(self.active_hours))


class FencesFile(Section):
    carriers: list[str] = Field(min_length=1)
    zones: list[FenceZone]
    # Key persons and vehicles, as pseudonyms made with the same key (`shaftwatch
    # watchlist hash`): one per line, in a file kept outside the repository.
    watchlist_file: str | None = None

    @model_validator(mode="after")
    def _unique_ids(self) -> FencesFile:
        _unique(self.zones, "zones")
        return self


# --------------------------------------------------------------------------- thresholds


class NightHours(Section):
    start: int = Field(20, ge=0, le=23)
    end: int = Field(6, ge=0, le=23)


class ThresholdsFile(Section):
    timezone_offset_h: float = Field(8.0, ge=-12, le=14)  # China Standard Time
    night: NightHours = NightHours()
    # The detectors' own parameter classes are the config models of their sections, so a
    # threshold is defined once, next to the rule that uses it.
    power: PowerRules = PowerRules()
    fence: FenceRules = FenceRules()
    fusion: FusionRules = FusionRules()
    vision: VisionRules = VisionRules()
    # What changes for the night hours (``night``, local time): keys of the sections above,
    # only those that differ, e.g. a lower person score for infrared pictures. At night the
    # rules in force are the sections above with these merged in (``at_night``).
    night_profile: dict[str, dict[str, Any]] = {}

    _clock: LocalClock = PrivateAttr()
    _at_night: ThresholdsFile | None = PrivateAttr(None)  # None: no night profile, the same by night

    @model_validator(mode="after")
    def _night_profile_merges(self) -> ThresholdsFile:
        self._clock = LocalClock(self.timezone_offset_h, self.night.start, self.night.end)
        if self.night_profile:
            unknown = set(self.night_profile) - set(PROFILE_SECTIONS)
            if unknown:
                raise _located(("night_profile", sorted(unknown)[0]),
                               f"a profile changes only {', '.join(PROFILE_SECTIONS)}")
            merged = self.model_dump(exclude={"night_profile"})
            for section, changes in self.night_profile.items():
                merged[section] = _merge(merged[section], changes)
            try:
                self._at_night = ThresholdsFile.model_validate(merged)
            except ValidationError as exc:
                loc, message = _explained(exc.errors()[0])
                raise _located(("night_profile",) + loc, message) from None
        return self

    def clock(self) -> LocalClock:
        return self._clock

    def at_night(self) -> ThresholdsFile:
        """These thresholds with the night profile merged in (the same when there is none)."""
        return self._at_night if self._at_night is not None else self


PROFILE_SECTIONS = ("power", "fence", "fusion", "vision")


def _merge(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``changes`` laid over it, nested mappings key by key."""
    out = dict(base)
    for key, value in changes.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


# --------------------------------------------------------------------------- the whole


class ShaftWatchConfig(Section):
    runtime: RuntimeSettings
    sites: SitesFile
    cameras: CamerasFile
    meters: MetersFile
    fences: FencesFile
    thresholds: ThresholdsFile
    config_dir: str

    # -- derived look-ups (cheap, built on demand)
    def site(self, site_id: str) -> Site | None:
        return next((s for s in self.sites.sites if s.id == site_id), None)

    def camera(self, camera_id: str) -> Camera | None:
        return next((c for c in self.cameras.cameras if c.id == camera_id), None)

    def meter(self, meter_id: str) -> Meter | None:
        return next((m for m in self.meters.meters if m.id == meter_id), None)

    # -- paths and endpoints with environment overrides applied
    @property
    def data_dir(self) -> Path:
        return _resolve(os.environ.get("SHAFTWATCH_DATA_DIR") or self.runtime.data_dir)

    @property
    def evidence_dir(self) -> Path:
        return _resolve(self.runtime.evidence_dir) if self.runtime.evidence_dir else self.data_dir / "evidence"

    @property
    def store_url(self) -> str:
        url = os.environ.get("SHAFTWATCH_STORE_URL") or self.runtime.store_url
        return url or f"sqlite:///{self.data_dir / 'shaftwatch.db'}"

    @property
    def kafka_bootstrap(self) -> str | None:
        """The configured cluster, or None when the local broker should be used."""
        return os.environ.get("KAFKA_BOOTSTRAP") or self.runtime.kafka.bootstrap

    def topic(self, name: str) -> str:
        """The name of a design topic (streams.records) on this cluster."""
        return self.runtime.app.topics.prefix + name

    @property
    def bootstrap_servers(self) -> str:
        """The cluster to use: KAFKA_BOOTSTRAP or the config, else the local broker's address."""
        local = self.runtime.kafka.local
        return self.kafka_bootstrap or f"{local.host}:{local.port}"

    @property
    def model_path(self) -> Path:
        return _resolve(os.environ.get("SHAFTWATCH_MODEL") or self.runtime.model_path)

    @property
    def footage_dir(self) -> Path:
        return _resolve(self.runtime.demo.footage_dir)


SECTION_FILES: dict[str, tuple[str, type[Section]]] = {
    "runtime": ("shaftwatch.yaml", RuntimeSettings),
    "sites": ("sites.yaml", SitesFile),
    "cameras": ("cameras.yaml", CamerasFile),
    "meters": ("meters.yaml", MetersFile),
    "fences": ("fences.yaml", FencesFile),
    "thresholds": ("thresholds.yaml", ThresholdsFile),
}


# --------------------------------------------------------------------------- errors


@dataclass(frozen=True)
class ConfigProblem:
    file: str
    line: int | None
    key: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.key or '(top level)'}: {self.message}"


class ConfigError(Exception):
    """Raised with every problem found, each naming file, line, key path and problem."""

    def __init__(self, problems: list[ConfigProblem]):
        self.problems = problems
        super().__init__("invalid configuration:\n" + "\n".join(f"  {p}" for p in problems))


class _LocatedError(ValueError):
    """A validator error that knows the key path below the model that raised it."""

    def __init__(self, loc: tuple, message: str):
        self.loc = loc
        super().__init__(message)


def _located(loc: tuple, message: str) -> _LocatedError:
    return _LocatedError(loc, message)


def _unique(items: list, where: str) -> None:
    seen: set[str] = set()
    for i, item in enumerate(items):
        if item.id in seen:
            raise _located((where, i, "id"), f"duplicate id {item.id!r}")
        seen.add(item.id)


# --------------------------------------------------------------------------- loading


def _resolve(path: str) -> Path:
    p = Path(path)
    return p if p.is_absolute() else (REPO_ROOT / p).resolve()


def config_dir_from_env() -> Path:
    return Path(os.environ.get("SHAFTWATCH_CONFIG_DIR") or DEFAULT_CONFIG_DIR)


def _line_of(node: yaml.Node | None, loc: tuple) -> int | None:
    """Walk a composed YAML node along a pydantic error location; return a 1-based line."""
    line = node.start_mark.line + 1 if node is not None else None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            child = next((v for k, v in node.value if k.value == str(part)), None)
            if child is None:
                # An unknown key: point at the key itself.
                key = next((k for k, _ in node.value if k.value == str(part)), None)
                return key.start_mark.line + 1 if key is not None else line
            node = child
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
        else:
            break
        line = node.start_mark.line + 1
    return line


def _explained(err: dict[str, Any]) -> tuple[tuple, str]:
    """One pydantic error as (key path, the problem in words)."""
    loc = tuple(err["loc"])
    message = err["msg"]
    ctx_error = (err.get("ctx") or {}).get("error")
    if isinstance(ctx_error, _LocatedError):
        loc = loc + ctx_error.loc
        message = str(ctx_error)
    elif message.startswith("Value error, "):
        message = message[len("Value error, "):]
    if err["type"] in ("extra_forbidden", "unexpected_keyword_argument"):
        message = "unknown key (check the spelling; see the published config schema)"
    return loc, message


def _problems_from(exc: ValidationError, file: str, root: yaml.Node | None) -> list[ConfigProblem]:
    problems = []
    for err in exc.errors():
        loc, message = _explained(err)
        key = ".".join(str(p) for p in loc)
        problems.append(ConfigProblem(file, _line_of(root, loc), key, message))
    return problems


def _load_section(directory: Path, filename: str, model: type[Section]) -> tuple[Section | None, list[ConfigProblem]]:
    path = directory / filename
    shown = str(path)
    if not path.exists():
        return None, [ConfigProblem(shown, None, "", "file is missing")]
    text = path.read_text(encoding="utf-8")
    try:
        root = yaml.compose(text)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark else None
        return None, [ConfigProblem(shown, line, "", f"not valid YAML: {getattr(exc, 'problem', exc)}")]
    if data is None:
        data = {}
    if not isinstance(data, dict):
        return None, [ConfigProblem(shown, 1, "", "the file must hold a mapping of keys to values")]
    try:
        return model.model_validate(data), []
    except ValidationError as exc:
        return None, _problems_from(exc, shown, root)


def _cross_check(cfg: dict[str, Section], directory: Path) -> list[ConfigProblem]:
    """References between files: every camera, meter and fence names a known site."""
    problems: list[ConfigProblem] = []
    site_ids = {s.id for s in cfg["sites"].sites}

    def check(section: str, items: list, list_key: str, ref_key: str) -> None:
        filename = SECTION_FILES[section][0]
        root = yaml.compose((directory / filename).read_text(encoding="utf-8"))
        for i, item in enumerate(items):
            refs = getattr(item, ref_key)
            for j, ref in enumerate(refs if isinstance(refs, list) else [refs]):
                if ref not in site_ids:
                    loc = (list_key, i, ref_key) + ((j,) if isinstance(refs, list) else ())
                    problems.append(ConfigProblem(
                        str(directory / filename), _line_of(root, loc), ".".join(map(str, loc)),
                        f"site {ref!r} is not in sites.yaml",
                    ))

    check("cameras", cfg["cameras"].cameras, "cameras", "site_id")
    check("meters", cfg["meters"].meters, "meters", "site_id")
    check("fences", cfg["fences"].zones, "zones", "site_ids")
    return problems


def load_config(directory: Path | str | None = None) -> ShaftWatchConfig:
    """Load and validate every file; raise ConfigError listing all problems found."""
    directory = Path(directory) if directory is not None else config_dir_from_env()
    sections: dict[str, Section] = {}
    problems: list[ConfigProblem] = []
    for name, (filename, model) in SECTION_FILES.items():
        section, found = _load_section(directory, filename, model)
        problems += found
        if section is not None:
            sections[name] = section
    if not problems:
        problems += _cross_check(sections, directory)
    if problems:
        raise ConfigError(problems)
    return ShaftWatchConfig(config_dir=str(directory.resolve()), **sections)


def config_json_schema() -> dict[str, Any]:
    """JSON Schema of every config file, keyed by file name (published in the repo)."""
    return {filename: model.model_json_schema() for filename, model in SECTION_FILES.values()}
