"""Renders a kustomize directory of deploy/k8s without kustomize: the few features these manifests use.

CI must validate the manifests offline on a fresh machine, and kustomize is a Go program that no package
registry this project uses ships ready to run. This renderer covers exactly what deploy/k8s uses, and
refuses anything else, so a new feature cannot be rendered wrongly in silence:

- `resources`: files (every YAML document in them) and directories with their own kustomization.yaml;
- `patches`: inline JSON 6902 patches (add, replace, remove) on targets chosen by group, version, kind and
  name (a regular expression over the whole name, as in kustomize);
- `namespace`: set on every namespaced resource;
- `labels` with `includeSelectors: false`: added to every resource's metadata.labels;
- `images`: `newName` and `newTag` of the containers' images in pod templates.

They are applied in kustomize's order (patches, namespace, labels, images). Where kustomize exists (kubectl
kustomize), tests/unit/test_k8s.py also compares this renderer's output with kustomize's own.

    python deploy/k8s/render.py deploy/k8s/overlays/production
"""

from __future__ import annotations

import copy
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

Resource = dict[str, Any]

SUPPORTED_FIELDS = frozenset({"apiVersion", "kind", "resources", "patches", "namespace", "labels", "images"})
#: Kinds that belong to no namespace (among those a kustomization of this project could hold).
CLUSTER_SCOPED_KINDS = frozenset(
    {
        "Namespace",
        "ClusterRole",
        "ClusterRoleBinding",
        "CustomResourceDefinition",
        "PersistentVolume",
        "StorageClass",
        "PriorityClass",
        "ClusterTriggerAuthentication",
        "ClusterImageCatalog",
    }
)
_POD_SPEC_PATHS = (("spec",), ("spec", "template", "spec"), ("spec", "jobTemplate", "spec", "template", "spec"))


class UnsupportedKustomization(ValueError):
    """The kustomization uses a feature this renderer does not implement."""


def build(directory: Path) -> list[Resource]:
    """Every resource the kustomization in `directory` renders, in the order they were read."""
    path = directory / "kustomization.yaml"
    kustomization = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    unsupported = set(kustomization) - SUPPORTED_FIELDS
    if unsupported:
        raise UnsupportedKustomization(f"{path}: {sorted(unsupported)} not supported by deploy/k8s/render.py")
    resources: list[Resource] = []
    for entry in kustomization.get("resources", []):
        target = (directory / entry).resolve()
        if target.is_dir():
            resources.extend(build(target))
        else:
            documents = yaml.safe_load_all(target.read_text(encoding="utf-8"))
            resources.extend(document for document in documents if document)
    for patch in kustomization.get("patches", []):
        _apply_patch(resources, patch, path)
    if "namespace" in kustomization:
        for resource in resources:
            if resource["kind"] not in CLUSTER_SCOPED_KINDS:
                resource.setdefault("metadata", {})["namespace"] = kustomization["namespace"]
    for labels in kustomization.get("labels", []):
        if (
            labels.get("includeSelectors", False)
            or labels.get("includeTemplates", False)
            or set(labels) - {"pairs", "includeSelectors", "includeTemplates"}
        ):
            raise UnsupportedKustomization(f"{path}: only `labels` with pairs and includeSelectors: false")
        for resource in resources:
            resource.setdefault("metadata", {}).setdefault("labels", {}).update(labels["pairs"])
    for image in kustomization.get("images", []):
        if set(image) - {"name", "newName", "newTag"}:
            raise UnsupportedKustomization(f"{path}: only `images` with name, newName and newTag")
        for resource in resources:
            for container in _containers(resource):
                container["image"] = _retagged(container["image"], image)
    return resources


def _containers(resource: Resource) -> Iterator[dict[str, Any]]:
    for pod_path in _POD_SPEC_PATHS:
        spec: Any = resource
        for key in pod_path:
            spec = spec.get(key) if isinstance(spec, dict) else None
        if isinstance(spec, dict):
            for field in ("initContainers", "containers"):
                yield from (container for container in spec.get(field, []) if "image" in container)


def _retagged(image: str, rule: dict[str, str]) -> str:
    name, tag = image, ""
    if "@" not in image and ":" in image.rsplit("/", 1)[-1]:
        name, tag = image.rsplit(":", 1)
    if name != rule["name"]:
        return image
    name = rule.get("newName", name)
    tag = rule.get("newTag", tag)
    return f"{name}:{tag}" if tag else name


def _matches(resource: Resource, target: dict[str, str]) -> bool:
    group, _, version = resource["apiVersion"].rpartition("/")
    wanted = {"group": group, "version": version, "kind": resource["kind"], "name": resource["metadata"]["name"]}
    for field, value in target.items():
        if field not in wanted:
            raise UnsupportedKustomization(f"patch target field {field!r} not supported")
        if not re.fullmatch(value, wanted[field]):
            return False
    return True


def _apply_patch(resources: list[Resource], patch: dict[str, Any], source: Path) -> None:
    if set(patch) != {"target", "patch"}:
        raise UnsupportedKustomization(f"{source}: only inline JSON 6902 patches (target and patch)")
    operations = yaml.safe_load(patch["patch"])
    if not isinstance(operations, list):
        raise UnsupportedKustomization(f"{source}: only JSON 6902 patches (a list of operations)")
    matched = [resource for resource in resources if _matches(resource, patch["target"])]
    if not matched:
        # kustomize accepts a patch that matches nothing; here it is surely a typo in the target.
        raise UnsupportedKustomization(f"{source}: the patch target {patch['target']} matches no resource")
    for resource in matched:
        for operation in operations:
            _apply_operation(resource, operation)


def _apply_operation(document: Resource, operation: dict[str, Any]) -> None:
    keys = [part.replace("~1", "/").replace("~0", "~") for part in operation["path"].split("/")[1:]]
    parent: Any = document
    for key in keys[:-1]:
        parent = parent[int(key)] if isinstance(parent, list) else parent[key]
    last = keys[-1]
    op = operation["op"]
    if op == "remove":
        del parent[int(last) if isinstance(parent, list) else last]
        return
    if op not in ("add", "replace"):
        raise UnsupportedKustomization(f"JSON 6902 operation {op!r} not supported")
    value = copy.deepcopy(operation["value"])
    if isinstance(parent, list):
        if last == "-":
            parent.append(value)
        elif op == "add":
            parent.insert(int(last), value)
        else:
            parent[int(last)] = value
    else:
        if op == "replace" and last not in parent:
            raise KeyError(f"JSON 6902 replace of a missing member: {operation['path']}")
        parent[last] = value


def main(arguments: list[str]) -> int:
    if len(arguments) != 1:
        print("usage: python deploy/k8s/render.py DIRECTORY", file=sys.stderr)
        return 2
    print(yaml.safe_dump_all(build(Path(arguments[0])), sort_keys=False, width=120), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
