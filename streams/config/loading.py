"""Loading the config directory: each file validated by its own model, references
between files checked, environment overrides applied (ShaftWatchConfig), and the JSON
Schema of every file for publishing."""

from __future__ import annotations

import os
from functools import cached_property
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from streams.config.base import Section
from streams.config.cameras import Camera, CamerasFile
from streams.config.errors import ConfigError, ConfigProblem, line_of, problems_from
from streams.config.fences import AllowListFile, FencesFile
from streams.config.meters import Meter, MetersFile
from streams.config.runtime import RuntimeSettings
from streams.config.sites import Site, SitesFile
from streams.config.thresholds import ThresholdsFile

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CONFIG_DIR = REPO_ROOT / "configs"


class ShaftWatchConfig(Section):
    runtime: RuntimeSettings
    sites: SitesFile
    cameras: CamerasFile
    meters: MetersFile
    fences: FencesFile
    thresholds: ThresholdsFile
    allowlist: AllowListFile = AllowListFile()  # fences.yaml's allowlist_file, when it names one
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
        """The name of a design topic (streams.contract.topics) on this cluster."""
        return self.runtime.app.topics.prefix + name

    @cached_property
    def kafka_security(self):
        """How clients reach the cluster (streams.kafka.security.KafkaSecurity), the password
        read from the environment once per process; a missing one is a ConfigError. Every
        client and every /health check uses it, so it is worked out once, not per call."""
        from streams.kafka.security import KafkaSecurity

        settings = self.runtime.kafka.security
        config_file = str(Path(self.config_dir) / "shaftwatch.yaml")
        if settings.protocol != "PLAINTEXT" and self.kafka_bootstrap is None:
            raise ConfigError([ConfigProblem(config_file, None,
                                             "kafka.security.protocol",
                                             f"{settings.protocol} needs a cluster (kafka.bootstrap or KAFKA_BOOTSTRAP): "
                                             "the local broker listens in plaintext on loopback only")])
        if settings.ca_file:
            settings = settings.model_copy(update={"ca_file": str(_resolve(settings.ca_file))})
        return KafkaSecurity.from_settings(settings, config_file)

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


def _resolve(path: str) -> Path:
    p = Path(path)
    return p if p.is_absolute() else (REPO_ROOT / p).resolve()


def config_dir_from_env() -> Path:
    return Path(os.environ.get("SHAFTWATCH_CONFIG_DIR") or DEFAULT_CONFIG_DIR)


def _load_section(directory: Path, filename: str, model: type[Section]) -> tuple[Section | None, list[ConfigProblem]]:
    path = directory / filename
    shown = str(path)
    if not path.exists():
        return None, [ConfigProblem(shown, None, "", "file is missing")]
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:  # saved as UTF-16 or GBK by an editor, say
        line = path.read_bytes()[:exc.start].count(b"\n") + 1
        return None, [ConfigProblem(shown, line, "", f"not UTF-8 text (byte {exc.object[exc.start]:#04x} at "
                                                     f"offset {exc.start}): save the file as UTF-8")]
    except OSError as exc:
        return None, [ConfigProblem(shown, None, "", f"cannot be read: {exc.strerror or exc}")]
    try:
        root = yaml.compose(text)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark else None
        return None, [ConfigProblem(shown, line, "", f"not valid YAML: {getattr(exc, 'problem', exc)}")]
    except ValueError as exc:  # a scalar YAML reads as a date that is none (2026-13-01)
        line, key = _bad_scalar(root)
        return None, [ConfigProblem(shown, line, key, f"not a valid date: {exc}")]
    if data is None:
        data = {}
    if not isinstance(data, dict):
        return None, [ConfigProblem(shown, 1, "", "the file must hold a mapping of keys to values")]
    try:
        return model.model_validate(data), []
    except ValidationError as exc:
        return None, problems_from(exc, shown, root)


def _bad_scalar(node: yaml.Node, path: tuple = ()) -> tuple[int | None, str]:
    """Where a scalar that YAML types as a timestamp cannot be read as one: (line, key path)."""
    if isinstance(node, yaml.ScalarNode) and node.tag == "tag:yaml.org,2002:timestamp":
        try:
            yaml.SafeLoader.construct_yaml_timestamp(yaml.SafeLoader(""), node)
        except ValueError:
            return node.start_mark.line + 1, ".".join(map(str, path))
    children = node.value if isinstance(node, (yaml.MappingNode, yaml.SequenceNode)) else []
    for i, child in enumerate(children):
        key, value = (child[0].value, child[1]) if isinstance(node, yaml.MappingNode) else (i, child)
        found = _bad_scalar(value, path + (key,))
        if found[0] is not None:
            return found
    return None, ""


def _cross_check(cfg: dict[str, Section], directory: Path) -> list[ConfigProblem]:
    """References between files: every camera, meter and fence names a known site; every
    carrier with a CAMARA endpoint pushes as an ingest source."""
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
                        str(directory / filename), line_of(root, loc), ".".join(map(str, loc)),
                        f"site {ref!r} is not in sites.yaml",
                    ))

    check("cameras", cfg["cameras"].cameras, "cameras", "site_id")
    check("meters", cfg["meters"].meters, "meters", "site_id")
    check("fences", cfg["fences"].zones, "zones", "site_ids")

    # A carrier's CAMARA events reach ingest with the token of its own ingest source.
    fence_sources = {s.id for s in cfg["runtime"].ingest.sources if s.feed == "fences"}
    camara = cfg["fences"].camara
    for i, endpoint in enumerate(camara.endpoints if camara else []):
        if endpoint.carrier not in fence_sources:
            filename = SECTION_FILES["fences"][0]
            loc = ("camara", "endpoints", i, "carrier")
            root = yaml.compose((directory / filename).read_text(encoding="utf-8"))
            problems.append(ConfigProblem(
                str(directory / filename), line_of(root, loc), ".".join(map(str, loc)),
                f"carrier {endpoint.carrier!r} has no ingest source of feed fences in shaftwatch.yaml "
                f"(its events are sent with that source's token)"))
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
    if not problems and sections["fences"].allowlist_file:
        allowlist, found = _load_allowlist(directory, sections["fences"])
        problems += found
        if allowlist is not None:
            sections["allowlist"] = allowlist
    if problems:
        raise ConfigError(problems)
    return ShaftWatchConfig(config_dir=str(directory.resolve()), **sections)


def _load_allowlist(directory: Path, fences: FencesFile) -> tuple[AllowListFile | None, list[ConfigProblem]]:
    """The allow-list file fences.yaml names (relative to the config directory), each entry's
    zone checked against fences.yaml."""
    path = directory / fences.allowlist_file  # an absolute path stays as it is
    allowlist, problems = _load_section(path.parent, path.name, AllowListFile)
    if allowlist is None:
        return None, problems
    zones = {z.id for z in fences.zones}
    root = yaml.compose(path.read_text(encoding="utf-8"))
    for i, entry in enumerate(allowlist.allowed):
        if entry.zone not in zones:
            loc = ("allowed", i, "zone")
            problems.append(ConfigProblem(str(path), line_of(root, loc), ".".join(map(str, loc)),
                                          f"zone {entry.zone!r} is not in fences.yaml"))
    return (allowlist if not problems else None), problems


def config_json_schema() -> dict[str, Any]:
    """JSON Schema of every config file, keyed by file name (published in the repo)."""
    return {filename: model.model_json_schema() for filename, model in SECTION_FILES.values()}
