"""The single-node broker's configuration, for the local platform and the Docker Compose file.

    python -m servicekit.kafka.broker_config --secrets .cache/secrets/kafka --log-dirs DIR \\
        [--host 127.0.0.1] [--listen 127.0.0.1] [--port 9092] [--controller-port 9093] [--out FILE]
        [--proxied-port 9094 --proxy-port 19092]

No listener takes an anonymous client: clients authenticate with SASL/SCRAM-SHA-512 over TLS
(the broker's certificate from `servicekit.kafka.credentials`); the controller listener is
TLS with client certificates, so only the broker's own certificate gets in; the broker and
`admin` are the super users; every other principal has exactly the ACLs that
`servicekit.kafka.admin` derives from the contracts (`allow.everyone.if.no.acl.found=false`).
`--proxied-port P --proxy-port Q` add a second client listener (the same authentication) on P
that advertises the broker at Q, where a fault-injecting TCP proxy forwards to P (the fault drill,
`tools/drill`): a client that bootstraps through the proxy is told to reach the broker at Q, so
all its connections go through the proxy, while every other client keeps the first listener.
The SCRAM users `admin` and `broker` are written when the storage is formatted
(`kafka-storage format --add-scram`, `format_scram_arguments`); the others by the admin tool.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from .access import password_path
from .acls import ADMIN, BROKER


def server_properties(
    secrets: Path,
    *,
    log_dirs: str,
    host: str = "127.0.0.1",
    listen: str = "127.0.0.1",
    port: int = 9092,
    controller_port: int = 9093,
    proxied_port: int | None = None,
    proxy_port: int | None = None,
) -> str:
    keystore_password = (secrets / "broker.p12.password").read_text().strip()
    broker_password = password_path(secrets, BROKER).read_text().strip()
    jaas = (
        "org.apache.kafka.common.security.scram.ScramLoginModule required "
        f'username="{BROKER}" password="{broker_password}";'
    )
    listeners = [f"SASL_SSL://{listen}:{port}", f"CONTROLLER://{listen}:{controller_port}"]
    advertised = [f"SASL_SSL://{host}:{port}"]
    protocols = ["CONTROLLER:SSL", "SASL_SSL:SASL_SSL"]
    proxied = []
    if proxied_port is not None:
        listeners.append(f"PROXIED://{listen}:{proxied_port}")
        advertised.append(f"PROXIED://{host}:{proxy_port or proxied_port}")
        protocols.append("PROXIED:SASL_SSL")
        proxied = [f"listener.name.proxied.scram-sha-512.sasl.jaas.config={jaas}"]
    lines = [
        "process.roles=broker,controller",
        "node.id=1",
        f"controller.quorum.voters=1@{host}:{controller_port}",
        f"listeners={','.join(listeners)}",
        f"advertised.listeners={','.join(advertised)}",
        "controller.listener.names=CONTROLLER",
        f"listener.security.protocol.map={','.join(protocols)}",
        "inter.broker.listener.name=SASL_SSL",
        "sasl.enabled.mechanisms=SCRAM-SHA-512",
        "sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512",
        f"listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config={jaas}",
        *proxied,
        "ssl.keystore.type=PKCS12",
        f"ssl.keystore.location={secrets / 'broker.p12'}",
        f"ssl.keystore.password={keystore_password}",
        f"ssl.key.password={keystore_password}",
        "ssl.truststore.type=PEM",
        f"ssl.truststore.location={secrets / 'ca.pem'}",
        # Only a certificate the CA signed for the broker opens the controller listener.
        "listener.name.controller.ssl.client.auth=required",
        "ssl.principal.mapping.rules=RULE:^CN=([^,]+),.*$/$1/,DEFAULT",
        "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        f"super.users=User:{BROKER};User:{ADMIN}",
        "allow.everyone.if.no.acl.found=false",
        f"log.dirs={log_dirs}",
        # Topics come only from the contracts' declarations (make topics), never from a typo.
        "auto.create.topics.enable=false",
        "num.partitions=3",
        "offsets.topic.replication.factor=1",
        "offsets.topic.num.partitions=10",
        "transaction.state.log.replication.factor=1",
        "transaction.state.log.min.isr=1",
        "share.coordinator.state.topic.replication.factor=1",
        "share.coordinator.state.topic.min.isr=1",
        "group.initial.rebalance.delay.ms=0",
        "log.retention.hours=168",
    ]
    return "\n".join(lines) + "\n"


def format_scram_arguments(secrets: Path) -> list[str]:
    """`kafka-storage format` arguments that create the super users' SCRAM credentials."""
    arguments = []
    for user in (ADMIN, BROKER):
        password = password_path(secrets, user).read_text().strip()
        arguments += ["--add-scram", f"SCRAM-SHA-512=[name={user},password={password}]"]
    return arguments


def admin_client_properties(secrets: Path) -> str:
    """Client properties of Kafka's own command-line tools acting as `admin` (health checks)."""
    password = password_path(secrets, ADMIN).read_text().strip()
    return (
        "\n".join(
            [
                "security.protocol=SASL_SSL",
                "sasl.mechanism=SCRAM-SHA-512",
                "sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required "
                f'username="{ADMIN}" password="{password}";',
                "ssl.truststore.type=PEM",
                f"ssl.truststore.location={secrets / 'ca.pem'}",
            ]
        )
        + "\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--secrets", type=Path, required=True)
    parser.add_argument("--log-dirs", required=True)
    parser.add_argument("--host", default="127.0.0.1", help="the name clients reach the broker by")
    parser.add_argument("--listen", default="127.0.0.1", help="the address the listeners bind")
    parser.add_argument("--port", type=int, default=9092)
    parser.add_argument("--controller-port", type=int, default=9093)
    parser.add_argument("--proxied-port", type=int, help="a second client listener, for a proxy (drill)")
    parser.add_argument("--proxy-port", type=int, help="the proxy's port (advertised)")
    parser.add_argument("--out", type=Path, help="write server.properties here (mode 0600)")
    parser.add_argument("--format-args", action="store_true", help="print the SCRAM arguments of the format")
    parser.add_argument("--admin-properties", type=Path, help="also write the admin's client properties here")
    args = parser.parse_args()
    if args.format_args:
        print("\n".join(format_scram_arguments(args.secrets)))
        return
    text = server_properties(
        args.secrets,
        log_dirs=args.log_dirs,
        host=args.host,
        listen=args.listen,
        port=args.port,
        controller_port=args.controller_port,
        proxied_port=args.proxied_port,
        proxy_port=args.proxy_port,
    )
    if args.admin_properties:
        _write_private(args.admin_properties, admin_client_properties(args.secrets))
    if args.out:
        _write_private(args.out, text)
    else:
        print(text, end="")


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600, exist_ok=True)
    path.chmod(0o600)
    path.write_text(text)


if __name__ == "__main__":
    main()
