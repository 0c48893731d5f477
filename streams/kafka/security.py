"""How a client proves itself to the cluster and protects what it sends: the one place
that turns ``kafka.security`` in shaftwatch.yaml (and the password in the environment)
into aiokafka's settings and Faust's credentials.

PLAINTEXT is for a trusted network only (the local broker listens on loopback). A county
cluster on a network others share uses SASL_SSL: TLS against the cluster's CA, and a
SCRAM user whose password never sits in a config file (``password_env`` names the
environment variable that holds it, as ingest tokens do). SCRAM keeps the password off
the wire even inside TLS; the brokers store only salted hashes of it.
"""

from __future__ import annotations

import os
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from streams.config.errors import ConfigError, ConfigProblem


@dataclass(frozen=True)
class KafkaSecurity:
    protocol: str = "PLAINTEXT"  # PLAINTEXT, SSL or SASL_SSL
    sasl_mechanism: str | None = None  # SCRAM-SHA-256 or SCRAM-SHA-512, for SASL_SSL
    username: str | None = None
    password: str | None = None
    ca_file: Path | None = None
    check_hostname: bool = True

    @classmethod
    def from_settings(cls, settings, config_file: str = "shaftwatch.yaml",
                      environ: dict[str, str] | None = None) -> KafkaSecurity:
        """From ``kafka.security`` (streams.config.runtime.KafkaSecuritySettings); a missing
        password or CA file is a ConfigError naming the file, the key and the problem."""
        environ = os.environ if environ is None else environ
        if settings.protocol == "PLAINTEXT":
            return PLAINTEXT
        problems = []
        ca_file = Path(settings.ca_file) if settings.ca_file else None
        if ca_file is not None and not ca_file.is_file():
            problems.append(ConfigProblem(config_file, None, "kafka.security.ca_file", f"no such file: {ca_file}"))
        password = None
        if settings.protocol == "SASL_SSL":
            password = environ.get(settings.password_env)
            if not password:
                problems.append(ConfigProblem(config_file, None, "kafka.security.password_env",
                                              f"protocol SASL_SSL: the environment variable {settings.password_env} "
                                              "holding the Kafka password is not set"))
        if problems:
            raise ConfigError(problems)
        return cls(protocol=settings.protocol,
                   sasl_mechanism=settings.sasl_mechanism if settings.protocol == "SASL_SSL" else None,
                   username=settings.username if settings.protocol == "SASL_SSL" else None,
                   password=password, ca_file=ca_file, check_hostname=settings.check_hostname)

    @property
    def uses_tls(self) -> bool:
        return self.protocol in ("SSL", "SASL_SSL")

    def ssl_context(self) -> ssl.SSLContext | None:
        """TLS 1.2 or newer, the brokers' certificates checked against the CA (and their
        names against the address dialled, unless check_hostname is off)."""
        if not self.uses_tls:
            return None
        context = ssl.create_default_context(cafile=str(self.ca_file) if self.ca_file else None)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.check_hostname = self.check_hostname
        return context

    def client_args(self) -> dict[str, Any]:
        """Keyword arguments for every aiokafka client (producer, consumer, admin)."""
        args: dict[str, Any] = {"security_protocol": self.protocol}
        if self.uses_tls:
            args["ssl_context"] = self.ssl_context()
        if self.protocol == "SASL_SSL":
            args.update(sasl_mechanism=self.sasl_mechanism, sasl_plain_username=self.username,
                        sasl_plain_password=self.password)
        return args

    def faust_credentials(self):
        """Faust's ``broker_credentials`` (None: plaintext)."""
        import faust

        if self.protocol == "SASL_SSL":
            return faust.SASLCredentials(username=self.username, password=self.password,
                                         ssl_context=self.ssl_context(), mechanism=self.sasl_mechanism)
        if self.protocol == "SSL":
            return faust.SSLCredentials(self.ssl_context())
        return None

    def __repr__(self) -> str:  # never the password, in a log line or a traceback
        return f"KafkaSecurity(protocol={self.protocol!r}, sasl_mechanism={self.sasl_mechanism!r}, " \
               f"username={self.username!r}, ca_file={str(self.ca_file) if self.ca_file else None!r})"


PLAINTEXT = KafkaSecurity()
