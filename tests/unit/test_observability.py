"""deploy/observability: the Prometheus alert rules and the Grafana dashboard use only metrics the code
defines (prometheus_client in libs/ and services/), with labels those metrics have, and are well formed.

promtool (Prometheus's own checker) is a Go build of all of Prometheus, minutes on this machine, so the
rules' structure and PromQL are checked here instead: the rule file's schema, durations, known functions,
balanced brackets, and every metric and label against the code (docs/decisions.md).
"""

from __future__ import annotations

import ast
import functools
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
OBSERVABILITY = ROOT / "deploy" / "observability"
METRIC_CLASSES = {"Counter", "Gauge", "Histogram", "Summary"}
DURATION = re.compile(r"^\d+(ms|s|m|h|d|w|y)$")
FUNCTIONS = {
    "rate",
    "increase",
    "irate",
    "delta",
    "sum",
    "max",
    "min",
    "avg",
    "count",
    "histogram_quantile",
    "clamp_min",
    "clamp_max",
    "abs",
    "absent",
    "time",
    "topk",
    "max_over_time",
    "min_over_time",
    "avg_over_time",
    "label_replace",
}
MODIFIERS = {"by", "without", "on", "ignoring", "group_left", "group_right"}
#: Labels Prometheus itself adds to every scraped series.
TARGET_LABELS = {"job", "instance", "namespace", "pod"}


@functools.cache
def _metrics_in_code() -> dict[str, set[str]]:
    """Every exposed series name the code defines, with its label names (a histogram's `le` included)."""
    found: dict[str, set[str]] = {}
    for path in [*(ROOT / "libs").rglob("*.py"), *(ROOT / "services").rglob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in METRIC_CLASSES):
                continue
            if not (node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
                continue
            name: str = node.args[0].value
            label_node = node.args[2] if len(node.args) > 2 else None
            label_node = next((keyword.value for keyword in node.keywords if keyword.arg == "labelnames"), label_node)
            labels = {
                str(element.value)
                for element in getattr(label_node, "elts", [])
                if isinstance(element, ast.Constant) and isinstance(element.value, str)
            }
            if node.func.id == "Counter":
                found[name if name.endswith("_total") else f"{name}_total"] = labels
            elif node.func.id in ("Histogram", "Summary"):
                for suffix in ("_count", "_sum"):
                    found[name + suffix] = labels
                if node.func.id == "Histogram":
                    found[f"{name}_bucket"] = labels | {"le"}
            else:
                found[name] = labels
    return found


def _rules() -> list[dict[str, Any]]:
    document = yaml.safe_load((OBSERVABILITY / "alerts.yaml").read_text())
    return [rule for group in document["groups"] for rule in group["rules"]]


def _dashboard() -> dict[str, Any]:
    return dict(json.loads((OBSERVABILITY / "grafana-dashboard.json").read_text()))


def _expressions() -> Iterator[tuple[str, str]]:
    for rule in _rules():
        yield rule["alert"], rule["expr"]
    for panel in _dashboard()["panels"]:
        for target in panel["targets"]:
            yield f"panel {panel['title']!r}", target["expr"]


def _check_promql(where: str, expression: str, metrics: dict[str, set[str]]) -> None:
    text = re.sub(r'"[^"]*"', '""', expression)  # label values may hold anything
    pairs = {"(": ")", "{": "}", "[": "]"}
    stack: list[str] = []
    for character in text:
        if character in pairs:
            stack.append(pairs[character])
        elif character in pairs.values():
            assert stack and stack.pop() == character, f"{where}: unbalanced {character!r} in {expression!r}"
    assert not stack, f"{where}: unclosed brackets in {expression!r}"
    for duration in re.findall(r"\[([^\]]*)\]", text):
        assert DURATION.match(duration), f"{where}: range {duration!r} is not a duration"
    for function in re.findall(r"\b([a-z_]+)\s*\(", text):
        assert function in FUNCTIONS | MODIFIERS, f"{where}: unknown PromQL function {function!r}"
    used = re.findall(r"\b(adledger_[a-z0-9_]+)\s*(\{[^}]*\})?", text)
    assert used, f"{where}: uses no adledger metric"
    for name, matchers in used:
        assert name in metrics, f"{where}: {name} is not a metric the code defines"
        for label in re.findall(r"([a-z_]+)\s*(?:=~|!=|!~|=)", matchers):
            assert label in metrics[name] | TARGET_LABELS, f"{where}: {name} has no label {label!r}"
    available = set().union(*(metrics[name] for name, _ in used)) | TARGET_LABELS
    for grouping in re.findall(r"\b(?:by|on|without|ignoring|group_left|group_right)\s*\(([^)]*)\)", text):
        for label in filter(None, (part.strip() for part in grouping.split(","))):
            assert label in available, f"{where}: groups by {label!r}, which none of its metrics has"


def test_the_code_defines_the_metrics_the_alerts_need() -> None:
    metrics = _metrics_in_code()
    for name in (
        "adledger_consumer_lag_records",
        "adledger_messages_handled_total",
        "adledger_outbox_oldest_age_seconds",
        "adledger_pause_latency_seconds_bucket",
        "adledger_pause_overspend_micros_total",
        "adledger_delivery_decisions_total",
    ):
        assert name in metrics
    assert metrics["adledger_pause_latency_seconds_bucket"] == {"reason", "le"}


@pytest.mark.parametrize(("where", "expression"), list(_expressions()), ids=lambda value: str(value)[:60])
def test_every_expression_uses_metrics_and_labels_the_code_defines(where: str, expression: str) -> None:
    _check_promql(where, expression, _metrics_in_code())


def test_the_check_catches_an_unknown_metric_a_wrong_label_and_a_typo() -> None:
    metrics = _metrics_in_code()
    for broken in (
        "sum(adledger_consumer_lag_record) > 1",
        'sum(adledger_consumer_lag_records{schema="x"}) > 1',
        "sum by (schema) (adledger_consumer_lag_records) > 1",
        "sum(rat(adledger_outbox_published_total[5m]))",
        "sum(rate(adledger_outbox_published_total[5 m]))",
        "sum(rate(adledger_outbox_published_total[5m])",
    ):
        with pytest.raises(AssertionError):
            _check_promql("broken", broken, metrics)


def test_the_alert_rules_are_a_well_formed_prometheus_rule_file() -> None:
    document = yaml.safe_load((OBSERVABILITY / "alerts.yaml").read_text())
    assert set(document) == {"groups"}
    group_names = [group["name"] for group in document["groups"]]
    assert len(group_names) == len(set(group_names))
    alerts = [rule["alert"] for rule in _rules()]
    assert len(alerts) == len(set(alerts))
    for group in document["groups"]:
        assert set(group) <= {"name", "interval", "rules"} and group["rules"]
        for rule in group["rules"]:
            assert set(rule) <= {"alert", "expr", "for", "labels", "annotations", "keep_firing_for"}
            assert re.fullmatch(r"Adledger[A-Z][A-Za-z]+", rule["alert"])
            assert isinstance(rule["expr"], str) and rule["expr"].strip()
            assert re.search(r"[<>]=?|==|!=", rule["expr"]), f"{rule['alert']}: an alert needs a condition"
            assert DURATION.match(rule.get("for", "0s"))
            assert rule["labels"]["severity"] in {"warning", "critical"}
            assert rule["annotations"]["summary"] and rule["annotations"]["description"]


def test_the_alerts_cover_lag_dead_letters_outbox_age_pause_latency_and_overspend_per_pause() -> None:
    expressions = {rule["alert"]: rule["expr"] for rule in _rules()}
    for metric in (
        "adledger_consumer_lag_records",
        'outcome="dead_lettered"',
        "adledger_outbox_oldest_age_seconds",
        "adledger_pause_latency_seconds_bucket",
        "adledger_pause_overspend_micros_total",
    ):
        assert any(metric in expression for expression in expressions.values()), metric


def test_every_alert_is_explained_in_the_readme() -> None:
    readme = (ROOT / "README.md").read_text()
    for alert in (rule["alert"] for rule in _rules()):
        assert alert in readme, f"README's operator section does not say what {alert} means"


def test_the_dashboard_is_a_grafana_dashboard_with_distinct_panels_on_a_chosen_prometheus() -> None:
    dashboard = _dashboard()
    assert dashboard["uid"] and dashboard["title"] and isinstance(dashboard["schemaVersion"], int)
    (variable,) = dashboard["templating"]["list"]
    assert variable["type"] == "datasource" and variable["query"] == "prometheus"
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    cells: set[tuple[int, int]] = set()
    for panel in dashboard["panels"]:
        assert panel["datasource"]["uid"] == "${" + variable["name"] + "}"
        assert panel["targets"] and all(target["refId"] for target in panel["targets"])
        box = panel["gridPos"]
        assert box["x"] + box["w"] <= 24
        covered = {(x, y) for x in range(box["x"], box["x"] + box["w"]) for y in range(box["y"], box["y"] + box["h"])}
        assert not covered & cells, f"panel {panel['title']!r} overlaps another"
        cells |= covered
