"""Who may write and read which topic: Kafka principals and ACLs generated from the topic catalogue.

A deployment's broker (docker-compose.yml, `deploy/local/stack start --secure`) authenticates every
client with SASL/SCRAM-SHA-512 and authorises it with Kafka's StandardAuthorizer, denying what no
ACL allows. The ACLs are not written by hand: `acl_bindings()` derives them from the catalogue's
producers and consumers (`adledger_contracts.topics`), one principal per service plus:

- a viewer (the finance console): Read and Describe of the topics it views, no group, no writes;
- `adserver`: the ad servers (CONTRACT.md): write `ads.spend.v1`, read `delivery.*` and `balances.v1`;
- `operator`: `adledger` (the CLI): read every topic, describe every group (lag), write what operators
  produce (`invoicing.alert-thresholds.v1`). A dead letter of a topic that only a service may write
  (`wallet.commands.v1`, ...) is replayed with that service's credentials, never the operator's;
- `admin`: the broker's super user, used only by the set-up (topics, ACLs, credentials).

So the only writers of `wallet.commands.v1` are `campaign` and `order_escrow`, and of
`invoicing.events.v1` only `invoicing`: an ad server that tries is refused (TopicAuthorizationFailed)
before a record reaches a partition.

    python -m adledger_libs.kafka_security principals   # the principals to create credentials for
    python -m adledger_libs.kafka_security acls         # the ACLs, one per line
    python -m adledger_libs.kafka_security apply --bootstrap-servers HOST:PORT --username admin \\
        --password-file FILE [--security-protocol SASL_PLAINTEXT]   # create the topics and the ACLs
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.protocol.admin import CreateAclsRequest_v1, DeleteAclsRequest_v1, DescribeAclsRequest_v1
from aiokafka.protocol.api import Request

from adledger_contracts.topics import CATALOGUE, TopicSpec
from adledger_libs.kafka import KafkaConnection, KafkaTarget, client_options, ensure_topics

#: The broker's super user (set-up only; no service runs as it).
ADMIN_PRINCIPAL = "admin"
#: The catalogue's external parties and the principal each is given.
EXTERNAL_PRINCIPALS: dict[str, str] = {
    "ad servers (external)": "adserver",
    "subscribers (external)": "adserver",
    "operators (external)": "operator",
}
OPERATOR_PRINCIPAL = "operator"
#: Kafka's wildcard resource name: every topic, every group.
WILDCARD = "*"

ResourceType = Literal["topic", "group", "cluster"]
Operation = Literal["Read", "Write", "Describe"]

_RESOURCE_TYPES: dict[str, int] = {"topic": 2, "group": 3, "cluster": 4}
_OPERATIONS: dict[str, int] = {"Read": 3, "Write": 4, "Describe": 8}
_ANY = 1
_PATTERN_LITERAL = 3
_PERMISSION_ALLOW = 3

#: An ACL as the broker holds it: resource type, name, pattern type, principal, host, operation, permission.
RawAcl = tuple[int, str, int, str, str, int, int]


@dataclass(frozen=True, order=True)
class AclBinding:
    """One ALLOW rule: `principal` may do `operation` on the resource (a literal name, or `*`)."""

    principal: str
    resource_type: ResourceType
    resource_name: str
    operation: Operation

    @property
    def kafka_principal(self) -> str:
        return f"User:{self.principal}"

    def raw(self) -> RawAcl:
        return (_RESOURCE_TYPES[self.resource_type], self.resource_name, _PATTERN_LITERAL, self.kafka_principal, "*",
                _OPERATIONS[self.operation], _PERMISSION_ALLOW)

    def __str__(self) -> str:
        return f"{self.kafka_principal} ALLOW {self.operation} {self.resource_type}:{self.resource_name}"


def principal_of(party: str) -> str:
    """The principal of a producer or consumer named in the catalogue (a service is its own name)."""
    return EXTERNAL_PRINCIPALS.get(party, party)


def consumer_group_of(service: str) -> str:
    """The consumer group a service reads in (`ServiceSettings.consumer_group`'s default)."""
    return f"adledger.{service}"


def _is_service(party: str) -> bool:
    return "(external)" not in party


def principals(catalogue: Sequence[TopicSpec] = CATALOGUE) -> tuple[str, ...]:
    """Every principal that needs credentials: each service named in the catalogue, the external
    parties' principals, the operator and the admin."""
    names = {
        principal_of(party) for spec in catalogue for party in (*spec.producers, *spec.consumers, *spec.viewers)
    }
    return tuple(sorted(names | {OPERATOR_PRINCIPAL, ADMIN_PRINCIPAL}))


_PRODUCE: tuple[Operation, ...] = ("Write", "Describe")
_CONSUME: tuple[Operation, ...] = ("Read", "Describe")


def acl_bindings(catalogue: Sequence[TopicSpec] = CATALOGUE) -> list[AclBinding]:
    """The ACLs of the platform, from the catalogue alone: a producer of a topic may Write (and
    Describe) it, a consumer may Read (and Describe) it, a service may Read its consumer group,
    and the operator may read everything and write what operators produce. Nothing else."""
    rules: set[AclBinding] = set()
    for spec in catalogue:
        for party in spec.producers:
            for operation in _PRODUCE:
                rules.add(AclBinding(principal_of(party), "topic", spec.name, operation))
        for party in spec.consumers:
            for operation in _CONSUME:
                rules.add(AclBinding(principal_of(party), "topic", spec.name, operation))
            if _is_service(party):
                rules.add(AclBinding(party, "group", consumer_group_of(party), "Read"))
        for party in spec.viewers:  # read without a group: no group, no dead letters
            for operation in ("Read", "Describe"):
                rules.add(AclBinding(party, "topic", spec.name, operation))
    # The operator looks at every topic (dead letters, delivery state, balances) without a group and
    # at every group's offsets (lag); it writes only what the catalogue says operators produce.
    rules |= {
        AclBinding(OPERATOR_PRINCIPAL, "topic", WILDCARD, "Read"),
        AclBinding(OPERATOR_PRINCIPAL, "topic", WILDCARD, "Describe"),
        AclBinding(OPERATOR_PRINCIPAL, "group", WILDCARD, "Describe"),
    }
    return sorted(rules)


def writers(topic: str, bindings: Iterable[AclBinding] | None = None) -> set[str]:
    """The principals that may write `topic` (a literal grant or the wildcard)."""
    return {
        rule.principal
        for rule in (acl_bindings() if bindings is None else bindings)
        if rule.resource_type == "topic" and rule.operation == "Write" and rule.resource_name in (topic, WILDCARD)
    }


class _CreateAcls(Request[CreateAclsRequest_v1]):  # type: ignore[misc]  # aiokafka ships no types
    """CreateAcls (API 30) with many creations in one request (aiokafka's own sends one)."""

    API_KEY = 30

    def __init__(self, bindings: Sequence[AclBinding]) -> None:
        self._bindings = bindings

    def build(self, request_struct_class: type[CreateAclsRequest_v1]) -> CreateAclsRequest_v1:
        return request_struct_class([rule.raw() for rule in self._bindings])


class _DescribeAllAcls(Request[DescribeAclsRequest_v1]):  # type: ignore[misc]  # aiokafka ships no types
    API_KEY = 29

    def build(self, request_struct_class: type[DescribeAclsRequest_v1]) -> DescribeAclsRequest_v1:
        return request_struct_class(_ANY, None, _ANY, None, None, _ANY, _ANY)


class _DeleteAcls(Request[DeleteAclsRequest_v1]):  # type: ignore[misc]  # aiokafka ships no types
    """DeleteAcls (API 31), one exact filter per ACL to delete."""

    API_KEY = 31

    def __init__(self, acls: Sequence[RawAcl]) -> None:
        self._acls = acls

    def build(self, request_struct_class: type[DeleteAclsRequest_v1]) -> DeleteAclsRequest_v1:
        return request_struct_class(list(self._acls))


class AclSetupError(RuntimeError):
    """The broker refused to create an ACL."""


async def create_acls(target: KafkaTarget, bindings: Sequence[AclBinding]) -> None:
    """Create the ACLs (creating one that exists changes nothing), as the admin principal."""
    admin = AIOKafkaAdminClient(**client_options(target), client_id="adledger-acl-setup")
    await admin.start()
    try:
        response = await admin._send_request(_CreateAcls(bindings))  # noqa: SLF001 - no public CreateAcls
    finally:
        await admin.close()
    failures = [
        f"{rule}: error {error_code} {message or ''}".rstrip()
        for rule, (error_code, message) in zip(bindings, response.creation_responses, strict=True)
        if error_code != 0
    ]
    if failures:
        raise AclSetupError("the broker refused ACLs: " + "; ".join(failures))


async def broker_acls(target: KafkaTarget) -> set[RawAcl]:
    """Every ACL the broker holds (as the admin principal)."""
    admin = AIOKafkaAdminClient(**client_options(target), client_id="adledger-acl-setup")
    await admin.start()
    try:
        response = await admin._send_request(_DescribeAllAcls())  # noqa: SLF001 - no public DescribeAcls
    finally:
        await admin.close()
    if response.error_code != 0:
        raise AclSetupError(f"the broker refused to describe its ACLs: error {response.error_code} {response.error_message}")
    return {
        (resource_type, name, pattern, principal, host, operation, permission)
        for resource_type, name, pattern, acls in response.resources
        for principal, host, operation, permission in acls
    }


async def delete_acls(target: KafkaTarget, acls: Sequence[RawAcl]) -> None:
    if not acls:
        return
    admin = AIOKafkaAdminClient(**client_options(target), client_id="adledger-acl-setup")
    await admin.start()
    try:
        response = await admin._send_request(_DeleteAcls(acls))  # noqa: SLF001 - no public DeleteAcls
    finally:
        await admin.close()
    failures = [f"{acl}: error {result[0]}" for acl, result in zip(acls, response.filter_responses, strict=True) if result[0]]
    if failures:
        raise AclSetupError("the broker refused to delete ACLs: " + "; ".join(failures))


async def apply(target: KafkaTarget, *, topics: bool = True, catalogue: Sequence[TopicSpec] = CATALOGUE) -> list[RawAcl]:
    """The deployment's set-up: the catalogue's topics (services then run with
    ADLEDGER_KAFKA_CREATE_TOPICS=false, having no right to create topics) and exactly the generated ACLs:
    missing ones are created, ones the catalogue no longer grants (or made by hand) are deleted.
    Returns the deleted ones."""
    if topics:
        await ensure_topics(target, catalogue)
    wanted = acl_bindings(catalogue)
    await create_acls(target, wanted)
    stale = sorted(await broker_acls(target) - {rule.raw() for rule in wanted})
    await delete_acls(target, stale)
    return stale


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m adledger_libs.kafka_security", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("principals", help="print the principals that need SCRAM credentials")
    commands.add_parser("acls", help="print the ACLs generated from the topic catalogue")
    setup = commands.add_parser("apply", help="create the catalogue's topics and the ACLs, as the admin")
    setup.add_argument("--bootstrap-servers", required=True)
    setup.add_argument("--security-protocol", default="SASL_PLAINTEXT", choices=("SASL_PLAINTEXT", "SASL_SSL"))
    setup.add_argument("--username", default=ADMIN_PRINCIPAL)
    setup.add_argument("--password-file", required=True, type=Path)
    setup.add_argument("--ssl-cafile", default="")
    setup.add_argument("--no-topics", action="store_true", help="only the ACLs (topics are managed elsewhere)")
    arguments = parser.parse_args(argv)
    if arguments.command == "principals":
        print("\n".join(principals()))
    elif arguments.command == "acls":
        print("\n".join(str(rule) for rule in acl_bindings()))
    else:
        connection = KafkaConnection(
            arguments.bootstrap_servers,
            security_protocol=arguments.security_protocol,
            username=arguments.username,
            password=arguments.password_file.read_text().rstrip("\r\n"),
            ssl_cafile=arguments.ssl_cafile,
        )
        stale = asyncio.run(apply(connection, topics=not arguments.no_topics))
        print(f"{len(acl_bindings())} ACLs applied at {connection}, {len(stale)} not granted by the catalogue deleted",
              file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
