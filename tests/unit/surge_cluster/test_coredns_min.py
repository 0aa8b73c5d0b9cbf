"""tools/coredns-min builds CoreDNS with only some plugins: it must still carry every plugin
the cluster's Corefile names (CoreDNS refuses to start on an unknown directive) and pin the
CoreDNS version of versions.env."""

from __future__ import annotations

import re

from surge_cluster import addons
from surge_cluster.versions import TOOLS_DIR, load_versions

MAIN = TOOLS_DIR / "coredns-min" / "main.go"
GO_MOD = TOOLS_DIR / "coredns-min" / "go.mod"


def corefile_plugins(corefile: str) -> set[str]:
    """The directive names of a Corefile's server blocks (first word at brace depth 1)."""
    names: set[str] = set()
    depth = 0
    for line in corefile.splitlines():
        words = line.split()
        if depth == 1 and words and words[0] != "}":
            names.add(words[0])
        depth += line.count("{") - line.count("}")
    return names


def directives() -> list[str]:
    block = re.search(r"var directives = \[\]string\{(.*?)\n\}", MAIN.read_text(), re.S)
    assert block is not None
    return re.findall(r'"([a-z0-9_]+)"', block.group(1))


def imported_plugins() -> set[str]:
    return set(re.findall(r'_ "github\.com/coredns/coredns/plugin/([a-z0-9_]+)"', MAIN.read_text()))


def test_corefile_parser_sees_nested_blocks_as_arguments() -> None:
    text = "a:53 {\n    errors\n    kubernetes x {\n        pods insecure\n    }\n    cache 30\n}\n"
    assert corefile_plugins(text) == {"errors", "kubernetes", "cache"}


def test_every_corefile_plugin_is_compiled_in_and_ordered() -> None:
    used = corefile_plugins(addons.COREFILE)
    assert "kubernetes" in used
    assert used <= set(directives())
    # These plugins' package names equal their directive names.
    assert set(directives()) == imported_plugins()
    assert len(directives()) == len(set(directives()))


def test_coredns_min_pins_the_coredns_version_of_versions_env() -> None:
    pinned = re.search(r"^require github\.com/coredns/coredns (\S+)$", GO_MOD.read_text(), re.M)
    assert pinned is not None
    assert pinned.group(1) == load_versions().coredns
