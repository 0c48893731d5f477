"""deploy/ is validated offline: no Docker engine runs here."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest
import yaml

from streams.config import load_config
from tests.helpers import REPO

DEPLOY = REPO / "deploy"


def test_cluster_runtime_config_is_valid(tmp_path):
    for path in (REPO / "configs").glob("*.yaml"):
        shutil.copy(path, tmp_path / path.name)
    shutil.copy(DEPLOY / "configs" / "shaftwatch.yaml", tmp_path / "shaftwatch.yaml")
    cfg = load_config(tmp_path)
    assert cfg.runtime.app.topics.replication == 3
    assert cfg.runtime.app.topics.partitions >= 6
    assert cfg.runtime.http.host == "0.0.0.0" and cfg.runtime.app.worker_web_host == "0.0.0.0"


def test_compose_stack():
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services = compose["services"]
    assert {"kafka-1", "kafka-2", "kafka-3", "postgres", "worker", "server", "topics"} <= set(services)
    assert services["worker"]["deploy"]["replicas"] >= 2
    env = services["worker"]["environment"]
    assert env["KAFKA_BOOTSTRAP"].count(",") == 2
    # Secrets are required from the environment, never written in the file.
    text = (DEPLOY / "compose.yaml").read_text()
    for secret in ("POSTGRES_PASSWORD", "SHAFTWATCH_PSEUDONYM_KEY", "KAFKA_CLUSTER_ID"):
        assert re.search(r"\$\{" + secret + r":\?", text), secret
    kafka_env = services["kafka-1"]["environment"]
    assert kafka_env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    assert kafka_env["KAFKA_MIN_INSYNC_REPLICAS"] == 2


def test_kubernetes_manifests():
    docs = [d for d in yaml.safe_load_all((DEPLOY / "k8s" / "shaftwatch.yaml").read_text()) if d]
    kinds = {(d["kind"], d["metadata"]["name"]) for d in docs}
    assert ("Deployment", "shaftwatch-worker") in kinds and ("Deployment", "shaftwatch-server") in kinds
    for doc in docs:
        if doc["kind"] != "Deployment":
            continue
        for container in doc["spec"]["template"]["spec"]["containers"]:
            assert container["readinessProbe"]["httpGet"]["path"] == "/health"
            for var in container.get("env", []):
                assert "valueFrom" in var, f"{var['name']} must come from a Secret"


def test_dockerfile_runs_unprivileged_with_offline_models():
    text = (DEPLOY / "Dockerfile").read_text()
    assert re.search(r"^USER shaftwatch$", text, re.M)
    assert "YOLO_OFFLINE=1" in text
    assert 'ENTRYPOINT ["shaftwatch"]' in text
    for path in re.findall(r"^COPY (\S+) ", text, re.M):
        if path != "pyproject.toml" and path != "README.md":
            assert (REPO / path).exists(), path


def test_the_local_cluster_runs_the_compose_stacks_kafka_settings(tmp_path):
    """The cluster tests (tests/cluster/) run Kafka as compose.yaml deploys it: three
    broker+controller nodes, replication 3, two in-sync copies for a write, no auto-created
    topics. The local nodes' server.properties are compared with the compose environment."""
    from streams.config import LocalBrokerSettings
    from streams.ops.local_broker import LocalKafkaCluster

    cluster = LocalKafkaCluster(LocalBrokerSettings(), tmp_path, 3, [(19092, 19093), (19094, 19095), (19096, 19097)])
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())["services"]
    assert len([name for name in compose if name.startswith("kafka-")]) == len(cluster.nodes)
    env = compose["kafka-1"]["environment"]
    for node in cluster.nodes:
        node.data_dir.mkdir(parents=True)
        props = dict(line.split("=", 1) for line in node._properties().read_text().splitlines() if "=" in line)
        assert props["process.roles"] == env["KAFKA_PROCESS_ROLES"]
        assert props["controller.quorum.voters"].count("@") == env["KAFKA_CONTROLLER_QUORUM_VOTERS"].count("@")
        for key in ("auto.create.topics.enable", "default.replication.factor", "min.insync.replicas",
                    "offsets.topic.replication.factor", "transaction.state.log.replication.factor",
                    "transaction.state.log.min.isr"):
            assert props[key] == str(env["KAFKA_" + key.upper().replace(".", "_")]).lower(), key


def metric_names_in_code() -> set[str]:
    """Every metric ShaftWatch defines (Counter/Gauge/Histogram names in the source), with
    the series a histogram exposes."""
    names = set()
    for package in ("streams", "alerts", "detectors"):
        for path in (REPO / package).rglob("*.py"):
            for kind, name in re.findall(r'(Counter|Gauge|Histogram)\(\s*"(shaftwatch_[a-z_]+)"', path.read_text()):
                names.add(name)
                if kind == "Histogram":
                    names |= {f"{name}_bucket", f"{name}_sum", f"{name}_count"}
    return names


def test_alert_rules_and_dashboard_use_real_metric_names():
    known = metric_names_in_code()
    assert {"shaftwatch_consumer_lag_records", "shaftwatch_records_accepted_total"} <= known
    rules = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())
    exprs = [r["expr"] for g in rules["groups"] for r in g["rules"]]
    assert {r["alert"] for g in rules["groups"] for r in g["rules"]} >= {
        "ConsumerLagGrowing", "CameraFeedSilent", "DeadLetterRate", "ConfigRefused", "IngestUnavailable"}
    dashboard = json.loads((DEPLOY / "grafana" / "shaftwatch.json").read_text())
    exprs += [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    used = {name for expr in exprs for name in re.findall(r"shaftwatch_[a-z_]+", expr)}
    assert used and used <= known, f"not defined in the code: {sorted(used - known)}"
    scrape = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    assert scrape["rule_files"] == ["alerts.yml"]
    assert {j["job_name"] for j in scrape["scrape_configs"]} == {"shaftwatch-worker", "shaftwatch-server",
                                                                  "shaftwatch-gateway"}


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool (Debian's prometheus package) not installed")
def test_promtool_accepts_the_rules_and_the_config():
    for args in (["check", "rules", "alerts.yml"], ["check", "config", "prometheus.yml"]):
        result = subprocess.run(["promtool", *args], cwd=DEPLOY / "prometheus", capture_output=True, text=True)
        assert result.returncode == 0, result.stdout + result.stderr
