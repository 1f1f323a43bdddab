"""Every tool that deploy/local/kafka offers starts and works with the pinned Kafka (deploy/kafka.lock).

Kafka moves its tools between releases (4.4 moved ConfigCommand out of kafka.admin, and `configs` failed
with "Could not find or load main class"), so each subcommand runs a harmless command against the shared
broker: lists and describes, on a topic of this test's own. The wrapper's own list of subcommands is read
from its --help, so a tool added there without a case here fails this test.
"""

from __future__ import annotations

import json
import os
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from ..deploy_modules import pinned_kafka_version
from .conftest import Stack, TopicFactory, unique
from .kafka_io import produce

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
WRAPPER = ROOT / "deploy" / "local" / "kafka"
TOOL_LIMIT_S = 120


def _environment(stack: Stack) -> dict[str, str]:
    # The pinned version, whatever the caller's shell asked for: that is the version under test.
    environment = {name: value for name, value in os.environ.items() if name != "ADLEDGER_KAFKA_VERSION"}
    environment["ADLEDGER_KAFKA_BOOTSTRAP_SERVERS"] = stack.kafka_bootstrap_servers
    return environment


def _offered_subcommands() -> set[str]:
    usage = subprocess.run([str(WRAPPER), "--help"], capture_output=True, text=True, check=True, timeout=30).stdout
    listed = usage.split("\nSubcommands:\n", 1)[1].split("\n\n", 1)[0]
    return {line.split()[0] for line in listed.splitlines() if line.strip()}


def test_the_wrapper_and_the_broker_use_the_pinned_jars_and_they_match_the_lock(stack: Stack) -> None:
    fetched = subprocess.run(
        [str(ROOT / "deploy" / "local" / "kafka-fetch"), "--quiet", "--verify"],
        capture_output=True,
        check=False,
        text=True,
        timeout=600,
        env=_environment(stack),
    )
    assert fetched.returncode == 0, fetched.stderr
    assert fetched.stdout.strip().endswith(f"/kafka/{pinned_kafka_version()}/libs"), fetched.stdout
    assert "CANNOT be verified" not in fetched.stderr


@pytest.mark.limit_s(400)
async def test_every_tool_of_the_wrapper_starts_and_answers_on_the_pinned_kafka(
    stack: Stack, new_topic: TopicFactory, tmp_path: Path
) -> None:
    topic = await new_topic("tools", partitions=1)
    await produce(stack.kafka_bootstrap_servers, topic, [(b"key", b"value", [])])
    group = unique("tools-console-consumer")
    offsets = tmp_path / "offsets.json"
    offsets.write_text(json.dumps({"partitions": [{"topic": topic, "partition": 0, "offset": 0}], "version": 1}))
    # subcommand -> (arguments, what its output must show); every one only reads, or touches only the
    # test's own topic (one more record; records deleted up to offset 0, which is none).
    cases: dict[str, tuple[list[str], str]] = {
        "topics": (["--describe", "--topic", topic], f"Topic: {topic}"),
        "consumer-groups": (["--list"], ""),
        "console-consumer": (
            [
                "--topic",
                topic,
                "--group",
                group,
                "--from-beginning",
                "--max-messages",
                "1",
                "--timeout-ms",
                "60000",
                "--formatter-property",
                "print.key=true",
            ],
            "key\tvalue",
        ),
        "console-producer": (["--topic", topic], ""),
        "groups": (["--list"], "GROUP"),
        "transactions": (["list"], "TransactionalId"),
        "metadata-quorum": (["describe", "--status"], "LeaderId"),
        "delete-records": (["--offset-json-file", str(offsets)], topic),
        "log-dirs": (["--describe", "--topic-list", topic], topic),
        "broker-api-versions": ([], "Produce("),
        "get-offsets": (["--topic", topic], f"{topic}:0:"),
        "configs": (["--describe", "--entity-type", "topics", "--entity-name", topic], "cleanup.policy"),
    }
    assert set(cases) == _offered_subcommands(), "every subcommand of deploy/local/kafka needs a case here"
    environment = _environment(stack)

    def run(subcommand: str) -> tuple[str, subprocess.CompletedProcess[str]]:
        stdin = "one line from the tools test\n" if subcommand == "console-producer" else ""
        done = subprocess.run(
            [str(WRAPPER), subcommand, *cases[subcommand][0]],
            input=stdin,
            capture_output=True,
            check=False,
            text=True,
            timeout=TOOL_LIMIT_S,
            env=environment,
        )
        return subcommand, done

    # Three at a time: each is a JVM of its own, and the machine has two cores.
    with ThreadPoolExecutor(max_workers=3) as pool:
        results = list(pool.map(run, cases))
    failures = []
    for subcommand, done in results:
        expected = cases[subcommand][1]
        if done.returncode != 0 or "Could not find or load main class" in done.stderr or expected not in done.stdout:
            failures.append(
                f"{subcommand}: exit {done.returncode}\nstdout: {done.stdout[-800:]}\nstderr: {done.stderr[-800:]}"
            )
    assert not failures, "\n\n".join(failures)
