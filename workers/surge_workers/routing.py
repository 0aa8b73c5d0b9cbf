"""Pure routing rules: which support team gets a conversation.

Order of precedence: a tenant with a dedicated team, then topic keywords (a non-essential
feature, skipped from degradation level 2), then language, then the default team. The
result is made sticky per conversation by the handler (first decision wins), so later
messages of a conversation never bounce between teams.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from surge_workers.errors import ConfigError

_WORD = re.compile(r"[a-z0-9]+")


@dataclass(frozen=True)
class RoutingRules:
    default_team: str = "general"
    tenant_teams: Mapping[str, str] = field(default_factory=dict)
    language_teams: Mapping[str, str] = field(
        default_factory=lambda: {"de": "dach", "fr": "francophone", "es": "iberia"}
    )
    topic_keywords: Mapping[str, tuple[str, ...]] = field(
        default_factory=lambda: {
            "billing": ("invoice", "refund", "charge", "charged", "payment", "billing"),
            "security": ("password", "hacked", "2fa", "login", "fraud"),
            "shipping": ("delivery", "shipping", "package", "tracking", "parcel"),
        }
    )


def choose_team(
    rules: RoutingRules, *, tenant: str, language: str | None, text: str, topic_routing: bool
) -> str:
    dedicated = rules.tenant_teams.get(tenant)
    if dedicated:
        return dedicated
    if topic_routing and text:
        words = set(_WORD.findall(text.lower()))
        # Deterministic: the team whose keywords match most, ties broken by team name.
        scores = {team: len(words.intersection(kw)) for team, kw in rules.topic_keywords.items()}
        best = max(sorted(scores), key=lambda team: scores[team], default=None)
        if best is not None and scores[best] > 0:
            return best
    if language:
        team = rules.language_teams.get(language.lower().split("-")[0])
        if team:
            return team
    return rules.default_team


def load_rules(path: str | Path) -> RoutingRules:
    """Rules from a JSON file with the RoutingRules field names (all optional)."""
    try:
        doc = json.loads(Path(path).read_text())
    except (OSError, ValueError) as err:
        raise ConfigError(f"routing rules {path}: {err}") from err
    if not isinstance(doc, dict):
        raise ConfigError(f"routing rules {path}: expected a JSON object")
    base = RoutingRules()
    return RoutingRules(
        default_team=str(doc.get("default_team", base.default_team)),
        tenant_teams=dict(doc.get("tenant_teams", base.tenant_teams)),
        language_teams=dict(doc.get("language_teams", base.language_teams)),
        topic_keywords={
            team: tuple(str(k).lower() for k in kws)
            for team, kws in dict(doc.get("topic_keywords", base.topic_keywords)).items()
        },
    )
