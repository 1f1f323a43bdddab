"""Turns operators' CustomResourceDefinitions into the JSON Schemas checked in beside this file.

CI validates the custom resources of deploy/k8s (Strimzi, CloudNativePG, KEDA) offline, so their schemas
live in the repository. Each comes from the operator's own CRD of the release deploy/k8s targets (README.md
beside this file says where from and how to fetch it again):

    python deploy/k8s/schemas/import_crds.py CRD.yaml [CRD.yaml ...]

writes `<group>/<kind>_<version>.json` for every version the CRD serves, and prints the SHA-256 of each
source file for README.md. The conversion keeps the OpenAPI v3 schema as it is, except:

- descriptions are dropped (they are most of the size, and a validator does not read them);
- `nullable: true` becomes a `null` in `type`, and `x-kubernetes-int-or-string` an integer-or-string;
- an object with `properties` and neither `additionalProperties` nor
  `x-kubernetes-preserve-unknown-fields` gets `additionalProperties: false`. The API server would prune an
  unknown field silently; here a misspelt field fails the test instead (what kubeconform calls strict).

The CEL rules (`x-kubernetes-validations`) stay in the files but are not evaluated; tests/unit/test_k8s.py
checks the few that matter to these manifests itself.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
#: Keywords whose values are data, not schemas: copied as they are.
_VALUES = frozenset({"default", "enum", "example", "x-kubernetes-validations", "x-kubernetes-list-map-keys"})


def convert(node: Any) -> Any:
    if isinstance(node, list):
        return [convert(item) for item in node]
    if not isinstance(node, dict):
        return node
    converted: dict[str, Any] = {}
    for key, value in node.items():
        if key == "description" and isinstance(value, str):
            continue
        if key in _VALUES:
            converted[key] = value
        elif key == "properties" and isinstance(value, dict):
            # Property names are data here, not keywords: a property may well be named "description".
            converted[key] = {name: convert(schema) for name, schema in value.items()}
        else:
            converted[key] = convert(value)
    if converted.pop("nullable", False) and "type" in converted:
        types = converted["type"] if isinstance(converted["type"], list) else [converted["type"]]
        converted["type"] = [*types, "null"]
    if converted.get("x-kubernetes-int-or-string") and "type" not in converted and "anyOf" not in converted:
        converted["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if (
        "properties" in converted
        and "additionalProperties" not in converted
        and not converted.get("x-kubernetes-preserve-unknown-fields")
    ):
        converted["additionalProperties"] = False
    return converted


def schemas_of(crd: dict[str, Any]) -> dict[Path, dict[str, Any]]:
    group = crd["spec"]["group"]
    kind = crd["spec"]["names"]["kind"]
    found: dict[Path, dict[str, Any]] = {}
    for version in crd["spec"]["versions"]:
        if not version.get("served", True):
            continue
        schema = convert(version["schema"]["openAPIV3Schema"])
        properties = schema.setdefault("properties", {})
        properties["apiVersion"] = {"enum": [f"{group}/{version['name']}"]}
        properties["kind"] = {"enum": [kind]}
        # metadata is the API server's ObjectMeta; only the name is checked here.
        properties["metadata"] = {"type": "object", "required": ["name"], "properties": {"name": {"type": "string"}}}
        schema["required"] = sorted({*schema.get("required", []), "apiVersion", "kind", "metadata"})
        schema["$schema"] = "http://json-schema.org/draft-04/schema#"
        found[Path(group) / f"{kind.lower()}_{version['name']}.json"] = schema
    return found


def main(paths: list[str]) -> int:
    if not paths:
        print(__doc__, file=sys.stderr)
        return 2
    for name in paths:
        source = Path(name)
        data = source.read_bytes()
        for document in yaml.safe_load_all(data):
            if not document or document.get("kind") != "CustomResourceDefinition":
                continue
            for path, schema in schemas_of(document).items():
                target = HERE / path
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(json.dumps(schema, indent=1, sort_keys=True) + "\n", encoding="utf-8")
                print(f"{path}  from {source.name}  sha256 {hashlib.sha256(data).hexdigest()}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
