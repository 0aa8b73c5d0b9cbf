"""A container's environment and argv, resolved the way the kubelet does it (pure).

Supported: env[].value with $(VAR) expansion, env[].valueFrom (fieldRef, secretKeyRef,
configMapKeyRef, resourceFieldRef), envFrom (configMapRef, secretRef, prefix), command and
args with $(VAR) expansion. A missing, non-optional reference raises EnvError, which the pod
runner reports like the kubelet's CreateContainerConfigError.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol


class EnvError(ValueError):
    """A referenced Secret, ConfigMap or key is missing (and not optional)."""


class RefLookup(Protocol):
    def secret(self, namespace: str, name: str) -> Mapping[str, str] | None: ...

    def config_map(self, namespace: str, name: str) -> Mapping[str, str] | None: ...


@dataclass(frozen=True)
class PodAddresses:
    pod_ip: str
    host_ip: str


def expand(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes $(VAR) expansion: defined vars are replaced, $$ escapes, the rest is kept."""
    out: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "$" and i + 1 < len(text):
            nxt = text[i + 1]
            if nxt == "$":
                out.append("$")
                i += 2
                continue
            if nxt == "(":
                end = text.find(")", i + 2)
                if end != -1:
                    name = text[i + 2 : end]
                    out.append(env.get(name, text[i : end + 1]))
                    i = end + 1
                    continue
        out.append(ch)
        i += 1
    return "".join(out)


def field_value(pod: Mapping[str, Any], path: str, addresses: PodAddresses) -> str:
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    simple = {
        "metadata.name": meta.get("name", ""),
        "metadata.namespace": meta.get("namespace", ""),
        "metadata.uid": meta.get("uid", ""),
        "spec.nodeName": spec.get("nodeName", ""),
        "spec.serviceAccountName": spec.get("serviceAccountName", ""),
        "status.podIP": addresses.pod_ip,
        "status.podIPs": addresses.pod_ip,
        "status.hostIP": addresses.host_ip,
        "status.hostIPs": addresses.host_ip,
    }
    if path in simple:
        return str(simple[path])
    for prefix, key in (("metadata.labels", "labels"), ("metadata.annotations", "annotations")):
        if path.startswith(prefix + "['") and path.endswith("']"):
            return str((meta.get(key) or {}).get(path[len(prefix) + 2 : -2], ""))
    raise EnvError(f"unsupported fieldRef {path!r}")


def _ref(
    kind: str, data: Mapping[str, str] | None, name: str, key: str, optional: bool
) -> str | None:
    if data is None:
        if optional:
            return None
        raise EnvError(f'{kind} "{name}" not found')
    if key not in data:
        if optional:
            return None
        raise EnvError(f'couldn\'t find key {key} in {kind} "{name}"')
    return data[key]


def _value_from(
    source: Mapping[str, Any],
    pod: Mapping[str, Any],
    namespace: str,
    lookup: RefLookup,
    addresses: PodAddresses,
) -> str | None:
    if ref := source.get("fieldRef"):
        return field_value(pod, str(ref["fieldPath"]), addresses)
    if ref := source.get("secretKeyRef"):
        data = lookup.secret(namespace, ref["name"])
        return _ref("Secret", data, ref["name"], ref["key"], bool(ref.get("optional")))
    if ref := source.get("configMapKeyRef"):
        data = lookup.config_map(namespace, ref["name"])
        return _ref("ConfigMap", data, ref["name"], ref["key"], bool(ref.get("optional")))
    if source.get("resourceFieldRef"):
        # No cgroups here: report "0" (the kubelet's value when no limit applies is node capacity).
        return "0"
    raise EnvError(f"unsupported valueFrom {sorted(source)}")


def container_env(
    pod: Mapping[str, Any],
    container: Mapping[str, Any],
    lookup: RefLookup,
    addresses: PodAddresses,
    base: Mapping[str, str],
) -> dict[str, str]:
    """base (PATH, HOME, ...) < envFrom < env, in the kubelet's order."""
    namespace = str((pod.get("metadata") or {}).get("namespace", "default"))
    env = dict(base)
    env["HOSTNAME"] = str((pod.get("metadata") or {}).get("name", ""))
    for source in container.get("envFrom") or []:
        prefix = str(source.get("prefix") or "")
        if ref := source.get("configMapRef"):
            data = lookup.config_map(namespace, ref["name"])
            kind = "ConfigMap"
        elif ref := source.get("secretRef"):
            data = lookup.secret(namespace, ref["name"])
            kind = "Secret"
        else:
            continue
        if data is None:
            if ref.get("optional"):
                continue
            raise EnvError(f'{kind} "{ref["name"]}" not found')
        env.update({prefix + k: v for k, v in data.items()})
    for var in container.get("env") or []:
        name = str(var["name"])
        if var.get("valueFrom"):
            value = _value_from(var["valueFrom"], pod, namespace, lookup, addresses)
            if value is None:
                continue
            env[name] = value
        else:
            env[name] = expand(str(var.get("value") or ""), env)
    return env


def container_argv(container: Mapping[str, Any], env: Mapping[str, str]) -> list[str]:
    """command + args, expanded. Without a command there is no image entrypoint to fall back on."""
    command = [str(c) for c in container.get("command") or []]
    args = [str(a) for a in container.get("args") or []]
    if not command:
        raise EnvError("container has no command (image entrypoints cannot be run locally)")
    return [expand(part, env) for part in command + args]
