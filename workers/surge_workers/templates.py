"""Per-tenant reply templates, rendered by Jinja2 in its immutable sandbox.

Where templates come from: a directory (``SURGE_TEMPLATES_DIR``), in Kubernetes a
ConfigMap mounted read-only, one key per template named ``<tenant>.<kind>.j2`` (kinds:
``ack``, ``notice``); ``default.<kind>.j2`` replaces the built-in default for every
tenant without its own. A ConfigMap rather than a KV bucket: templates are reviewed
configuration that changes with deployments (kept in Git beside the MessagingCluster),
the kubelet refreshes the mounted files without a restart, and the workers need no write
access to NATS for it. The directory is re-scanned at most every ``interval`` seconds.

Why a sandbox: a tenant's template is text someone other than the platform team wrote.
:class:`jinja2.sandbox.ImmutableSandboxedEnvironment` refuses attribute access to
internals (``__class__``, ``__globals__``, ``mro`` ...), calls of unsafe callables and
mutation of the context; the context itself holds only plain strings and numbers, no
objects that lead anywhere. A template that does not compile, is larger than
``MAX_TEMPLATE_BYTES`` or fails to render the sample context is refused when it is
loaded (logged, the default is used), and a rendering error at run time also falls back
to the default, so a broken template never silences the acknowledgements. Output is
capped at ``MAX_OUTPUT_CHARS``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from jinja2 import StrictUndefined, Template, nodes
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from surge_workers.replies import ReplyKind

MAX_TEMPLATE_BYTES: Final = 4096
MAX_OUTPUT_CHARS: Final = 1000
DEFAULT_TENANT: Final = "default"
COMPOSED_KINDS: Final = (ReplyKind.ACK, ReplyKind.NOTICE)

DEFAULT_SOURCES: Final[dict[ReplyKind, str]] = {
    ReplyKind.ACK: (
        "Thanks, we have your message. "
        "{% if wait_text %}You are number {{ position }} in line; expected wait: "
        "{{ wait_text }}.{% else %}We will answer as soon as we can.{% endif %}"
    ),
    ReplyKind.NOTICE: (
        "We are handling an unusually high volume of requests right now. "
        "{% if priority == 'bulk' %}Your request is queued and will be answered once the "
        "surge has passed.{% else %}Urgent requests are answered first; thank you for your "
        "patience.{% endif %}"
    ),
}

#: What a template may use (all plain values). Also the sample a new template must render.
SAMPLE_CONTEXT: Final[dict[str, Any]] = {
    "tenant": "acme",
    "conversation_id": "c-1",
    "priority": "normal",
    "team": "general",
    "position": 3,
    "wait_s": 42.0,
    "wait_text": "about 1 minute",
    "level": 0,
}


class TemplateRejectedError(ValueError):
    """A template that does not compile, is too large or fails to render."""


def humanize_wait(seconds: float | None) -> str:
    """Words a customer reads: never a false precision."""
    if seconds is None:
        return ""
    if seconds < 60:
        return "less than a minute"
    minutes = round(seconds / 60)
    if minutes < 60:
        return f"about {minutes} minute{'s' if minutes != 1 else ''}"
    hours = seconds / 3600
    return f"about {hours:.1f} hours"


class _Sandbox(ImmutableSandboxedEnvironment):
    """The immutable sandbox, plus bounds on what could exhaust memory or CPU:
    ``'x' * 10**9`` and ``2 ** 10**9`` are refused (the sandbox only caps ``range``)."""

    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "**":
            if isinstance(right, int | float) and abs(right) > _MAX_EXPONENT:
                raise SecurityError("exponent too large")
            return left**right
        for seq, times in ((left, right), (right, left)):
            repeated = isinstance(seq, str | list | tuple) and isinstance(times, int)
            if repeated and len(seq) * times > _MAX_REPEAT:
                raise SecurityError("repetition too large")
        return left * right


_MAX_EXPONENT: Final = 64
_MAX_REPEAT: Final = 10_000


def sandbox() -> ImmutableSandboxedEnvironment:
    env = _Sandbox(autoescape=False, undefined=StrictUndefined)
    env.globals.clear()  # no range(), dict(), lipsum(), cycler() ... nothing to call
    return env


def _bounded_loops(env: ImmutableSandboxedEnvironment, source: str) -> None:
    """Loops inside loops (or recursive ones) could spin for hours on short strings."""
    tree = env.parse(source)
    for loop in tree.find_all(nodes.For):
        if loop.recursive or any(True for _ in loop.find_all(nodes.For)):
            raise TemplateRejectedError("nested or recursive loops are not allowed")
    if any(True for _ in tree.find_all(nodes.Macro)):
        raise TemplateRejectedError("macros are not allowed")


def compile_template(env: ImmutableSandboxedEnvironment, source: str) -> Template:
    if len(source.encode()) > MAX_TEMPLATE_BYTES:
        raise TemplateRejectedError(f"template above {MAX_TEMPLATE_BYTES} bytes")
    try:
        _bounded_loops(env, source)
        template = env.from_string(source)
        template.render(SAMPLE_CONTEXT)
    except TemplateRejectedError:
        raise
    except Exception as err:  # SecurityError, UndefinedError, and any Python error
        raise TemplateRejectedError(f"{type(err).__name__}: {err}") from err
    return template


def render(template: Template, context: Mapping[str, Any]) -> str:
    """Render with plain values only; raises on a failure (any exception)."""
    text = template.render(dict(context))
    text = " ".join(text.split())
    return text[:MAX_OUTPUT_CHARS]


@dataclass(frozen=True)
class _Loaded:
    templates: dict[tuple[str, ReplyKind], Template]
    signature: tuple[tuple[str, float], ...]


class TemplateStore:
    """Tenant templates from a directory, with the built-in defaults behind them."""

    def __init__(
        self,
        directory: str | Path | None = None,
        *,
        log: Any = None,
        interval: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.directory = Path(directory) if directory else None
        self.log = log
        self.interval = interval
        self.clock = clock
        self.env = sandbox()
        self.defaults = {kind: compile_template(self.env, s) for kind, s in DEFAULT_SOURCES.items()}
        self._loaded = _Loaded({}, ())
        self._checked = float("-inf")
        self.rejected: dict[str, str] = {}  # file name -> why (for logs and tests)

    def _warn(self, event: str, **fields: Any) -> None:
        if self.log is not None:
            self.log.warning(event, **fields)

    def _signature(self) -> tuple[tuple[str, float], ...]:
        if self.directory is None:
            return ()
        try:
            files = sorted(self.directory.glob("*.j2"))
            return tuple((f.name, f.stat().st_mtime) for f in files if f.is_file())
        except OSError as err:
            self._warn("templates_unreadable", directory=str(self.directory), error=str(err))
            return self._loaded.signature

    def _load(self, signature: tuple[tuple[str, float], ...]) -> _Loaded:
        assert self.directory is not None
        templates: dict[tuple[str, ReplyKind], Template] = {}
        self.rejected = {}
        for name, _ in signature:
            tenant, _, rest = name.partition(".")
            kind_name = rest.removesuffix(".j2")
            try:
                kind = ReplyKind(kind_name)
                if kind not in COMPOSED_KINDS:
                    raise ValueError(kind_name)
            except ValueError:
                self.rejected[name] = f"unknown kind {kind_name!r} (use ack or notice)"
                self._warn("template_rejected", file=name, error=self.rejected[name])
                continue
            try:
                source = (self.directory / name).read_text()
                templates[(tenant, kind)] = compile_template(self.env, source)
            except (OSError, UnicodeDecodeError, TemplateRejectedError) as err:
                self.rejected[name] = str(err)
                self._warn("template_rejected", file=name, error=str(err))
        return _Loaded(templates, signature)

    def _refresh(self) -> None:
        now = self.clock()
        if self.directory is None or now - self._checked < self.interval:
            return
        self._checked = now
        signature = self._signature()
        if signature != self._loaded.signature:
            self._loaded = self._load(signature)

    def template(self, tenant: str, kind: ReplyKind) -> Template:
        self._refresh()
        templates = self._loaded.templates
        return (
            templates.get((tenant, kind))
            or templates.get((DEFAULT_TENANT, kind))
            or self.defaults[kind]
        )

    def render(self, tenant: str, kind: ReplyKind, context: Mapping[str, Any]) -> str:
        """The tenant's template, or the default when it has none or it fails."""
        template = self.template(tenant, kind)
        try:
            return render(template, context)
        except Exception as err:  # a tenant's template never silences the reply
            self._warn("template_failed", tenant=tenant, kind=kind.value, error=str(err))
            return render(self.defaults[kind], context)
