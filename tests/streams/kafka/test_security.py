"""Kafka over SASL/SCRAM and TLS, as a county cluster on a shared network is reached.

A real broker (the local broker's jars) gets a second listener, SASL_SSL with a SCRAM-SHA-512
user, its certificate signed by a CA this test makes. Through it: topic creation, a
producer and a consumer, the HTTP server's ingest and a Faust worker turning a reading into
a signal, each configured only by ``kafka.security`` in shaftwatch.yaml and the password in
the environment. A wrong password, a client that does not trust the CA and a plaintext
client are each refused.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import json
import urllib.request
from pathlib import Path

import pytest
import yaml
from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaConnectionError
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from streams.config import LocalBrokerSettings, load_config
from streams.config.errors import ConfigError
from streams.kafka.admin import ensure_topics, metadata_ok, topic_plan
from streams.kafka.producer import KafkaSink
from streams.kafka.security import PLAINTEXT, KafkaSecurity
from streams.ops.local_broker import LocalKafkaBroker, ScramTlsListener
from tests.helpers import ServerProcess, WorkerProcess, free_port, isolated_config, wait_for

USER, PASSWORD = "shaftwatch-worker", "a-scram-password-for-the-test"


# --------------------------------------------------------------------------- a CA of our own


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def make_ca_and_broker_cert(directory: Path) -> tuple[Path, Path]:
    """A CA, and a broker certificate it signed for 127.0.0.1; returns (ca.pem, broker.pem),
    broker.pem holding the broker's private key (PKCS#8) and its certificate chain."""
    now = dt.datetime.now(dt.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = (x509.CertificateBuilder().subject_name(_name("ShaftWatch test CA")).issuer_name(_name("ShaftWatch test CA"))
               .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
               .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                            content_commitment=False, key_encipherment=False, data_encipherment=False,
                                            key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
               .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder().subject_name(_name("kafka-test-broker")).issuer_name(ca_cert.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                                                        x509.DNSName("localhost")]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    ca_path, broker_path = directory / "ca.pem", directory / "broker.pem"
    ca_path.write_bytes(ca_cert.public_bytes(pem))
    broker_path.write_bytes(key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
                            + cert.public_bytes(pem) + ca_cert.public_bytes(pem))
    broker_path.chmod(0o600)
    return ca_path, broker_path


@pytest.fixture(scope="module")
def secure_broker(tmp_path_factory):
    """(SASL_SSL bootstrap, CA file): a broker whose clients must use TLS and a SCRAM user."""
    directory = Path(tmp_path_factory.mktemp("kafka-scram"))
    ca, keystore = make_ca_and_broker_cert(directory)
    listener = ScramTlsListener(port=free_port(), keystore_pem=keystore, users={USER: PASSWORD})
    settings = LocalBrokerSettings(port=free_port(), controller_port=free_port(), heap_mb=384)
    with LocalKafkaBroker(settings, directory / "node", scram_tls=listener):
        yield f"127.0.0.1:{listener.port}", ca


def security(ca: Path, password: str = PASSWORD, ca_file: Path | None = None) -> KafkaSecurity:
    return KafkaSecurity(protocol="SASL_SSL", sasl_mechanism="SCRAM-SHA-512", username=USER, password=password,
                         ca_file=ca_file or ca)


def secure_config(tmp_path: Path, bootstrap: str, ca: Path) -> Path:
    config_dir = isolated_config(tmp_path, "scram")
    path = config_dir / "shaftwatch.yaml"
    runtime = yaml.safe_load(path.read_text())
    runtime["kafka"]["bootstrap"] = bootstrap
    runtime["kafka"]["security"] = {"protocol": "SASL_SSL", "sasl_mechanism": "SCRAM-SHA-512", "username": USER,
                                    "password_env": "TEST_KAFKA_PASSWORD", "ca_file": str(ca)}
    path.write_text(yaml.safe_dump(runtime, sort_keys=False))
    return config_dir


# --------------------------------------------------------------------------- settings alone


def test_plaintext_is_the_default_and_needs_nothing(tmp_path):
    cfg = load_config(isolated_config(tmp_path, "plain"))
    assert cfg.kafka_security is PLAINTEXT
    assert PLAINTEXT.client_args() == {"security_protocol": "PLAINTEXT"} and PLAINTEXT.faust_credentials() is None


def test_sasl_settings_name_the_file_key_and_problem(tmp_path, monkeypatch):
    config_dir = secure_config(tmp_path, "kafka-1:9093", tmp_path / "no-such-ca.pem")
    monkeypatch.delenv("TEST_KAFKA_PASSWORD", raising=False)
    with pytest.raises(ConfigError) as missing:
        load_config(config_dir).kafka_security
    text = str(missing.value)
    assert "shaftwatch.yaml" in text and "kafka.security.password_env" in text and "TEST_KAFKA_PASSWORD" in text
    assert "kafka.security.ca_file" in text and "no such file" in text

    # A user is required, and SASL with no cluster configured (the plaintext local broker) is refused.
    runtime = yaml.safe_load((config_dir / "shaftwatch.yaml").read_text())
    del runtime["kafka"]["security"]["username"]
    (config_dir / "shaftwatch.yaml").write_text(yaml.safe_dump(runtime))
    with pytest.raises(ConfigError, match=r"shaftwatch.yaml.*kafka.security.*needs a username"):
        load_config(config_dir)
    runtime["kafka"]["security"]["username"] = USER
    runtime["kafka"]["bootstrap"] = None
    (config_dir / "shaftwatch.yaml").write_text(yaml.safe_dump(runtime))
    monkeypatch.setenv("TEST_KAFKA_PASSWORD", PASSWORD)
    monkeypatch.delenv("KAFKA_BOOTSTRAP", raising=False)
    with pytest.raises(ConfigError, match=r"kafka.security.protocol: SASL_SSL needs a cluster"):
        load_config(config_dir).kafka_security


def test_the_password_never_shows_in_a_log_line(tmp_path):
    sec = security(tmp_path / "ca.pem")
    assert PASSWORD not in repr(sec) and PASSWORD not in str(sec)
    assert "SASL_SSL" in repr(sec)


# --------------------------------------------------------------------------- a real broker


def test_clients_reach_the_cluster_over_scram_and_tls(secure_broker, tmp_path):
    bootstrap, ca = secure_broker
    cfg = load_config(isolated_config(tmp_path, "scram-clients"))
    topic = cfg.topic("meter-readings")

    async def round_trip() -> list[bytes]:
        created = await ensure_topics(bootstrap, topic_plan(cfg), security=security(ca))
        assert topic in created
        async with KafkaSink(bootstrap, "test", security=security(ca)) as sink:
            await sink.send(topic, b"M-0001", b"over TLS")
        consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=None,
                                    **security(ca).client_args())
        await consumer.start()
        try:
            batch = await consumer.getmany(timeout_ms=10_000)
            return [r.value for records in batch.values() for r in records]
        finally:
            await consumer.stop()

    assert asyncio.run(round_trip()) == [b"over TLS"]


@pytest.mark.parametrize("who, reason", [("wrong password", "SaslAuthenticationFailed"),
                                         ("CA not trusted", "CERTIFICATE_VERIFY_FAILED"),
                                         ("plaintext", "closed")])
def test_the_cluster_refuses_who_cannot_prove_itself(secure_broker, tmp_path, caplog, who, reason):
    bootstrap, ca = secure_broker
    if who == "wrong password":
        client = security(ca, password="not-the-password")
    elif who == "CA not trusted":
        other_ca, _ = make_ca_and_broker_cert(tmp_path)
        client = security(ca, ca_file=other_ca)
    else:
        client = PLAINTEXT
    with pytest.raises(KafkaConnectionError, match="Unable to bootstrap"):
        asyncio.run(asyncio.wait_for(metadata_ok(bootstrap, client), 20))
    # aiokafka logs why the connection was refused, and raises only that it was.
    assert reason in caplog.text


def test_server_and_worker_run_over_scram_and_tls(secure_broker, tmp_path, monkeypatch):
    """`shaftwatch server` takes readings over HTTP and a Faust worker turns them into a
    signal, both talking to Kafka only over SASL_SSL, configured by shaftwatch.yaml alone
    and the password in the environment."""
    bootstrap, ca = secure_broker
    config_dir = secure_config(tmp_path, bootstrap, ca)
    cfg = load_config(config_dir)
    token = "utility-token-for-the-scram-test"
    runtime = yaml.safe_load((config_dir / "shaftwatch.yaml").read_text())
    runtime.setdefault("ingest", {})["sources"] = [{"id": "utility", "feed": "meters", "token_env": "TEST_UTILITY_TOKEN"}]
    (config_dir / "shaftwatch.yaml").write_text(yaml.safe_dump(runtime, sort_keys=False))
    env = {"TEST_KAFKA_PASSWORD": PASSWORD, "TEST_UTILITY_TOKEN": token}
    for key, value in env.items():
        monkeypatch.setenv(key, value)  # the worker inherits the test's environment
    worker = server = None
    try:
        worker = WorkerProcess(config_dir, bootstrap, tmp_path / "worker.log").start()
        worker.wait_ready(timeout=120)
        assert worker.get("/health")["kafka"] == "ok"
        server = ServerProcess(config_dir, bootstrap, tmp_path / "server.log", env=env)
        # A cut line drawing power: the reconnection rule fires on it at once.
        cut = next(m for m in cfg.meters.meters if m.expected_zero)
        t0 = 1_790_000_000.0
        rows = [{"meter_id": cut.id, "ts": t0 + 900 * i, "energy_kwh": 6.25} for i in range(4)]  # 25 kW
        request = urllib.request.Request(server.url("/ingest/meter-readings"), data=json.dumps(rows).encode(),
                                         method="POST", headers={"Authorization": f"Bearer {token}",
                                                                 "Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as response:
            assert json.loads(response.read())["accepted"] == 4

        async def signals() -> list[dict]:
            consumer = AIOKafkaConsumer(cfg.topic("signals"), bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                        group_id=None, **security(ca).client_args())
            await consumer.start()
            try:
                batch = await consumer.getmany(timeout_ms=3000)
                return [json.loads(r.value) for records in batch.values() for r in records]
            finally:
                await consumer.stop()
        found = wait_for(lambda: [s for s in asyncio.run(signals()) if s["source_id"] == cut.id], 90,
                         what="a reconnection signal from the worker over SASL_SSL")
        assert found[0]["kind"] == "reconnection"
    finally:
        if server is not None:
            server.stop()
        if worker is not None:
            worker.stop()
