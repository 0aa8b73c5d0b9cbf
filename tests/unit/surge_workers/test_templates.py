"""Per-tenant templates in Jinja2's sandbox: defaults, overrides, and no way to the host."""

from __future__ import annotations

from pathlib import Path

import pytest

from surge_workers.replies import ReplyKind
from surge_workers.templates import (
    MAX_OUTPUT_CHARS,
    SAMPLE_CONTEXT,
    TemplateStore,
    humanize_wait,
)


def store(tmp_path: Path, files: dict[str, str]) -> TemplateStore:
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    return TemplateStore(tmp_path, interval=0.0)


def test_a_tenant_without_templates_gets_the_default_with_position_and_wait() -> None:
    text = TemplateStore().render("acme", ReplyKind.ACK, SAMPLE_CONTEXT)
    assert "number 3 in line" in text
    assert "about 1 minute" in text


def test_the_default_ack_without_a_forecast_promises_no_time() -> None:
    context = {**SAMPLE_CONTEXT, "wait_s": None, "wait_text": ""}
    text = TemplateStore().render("acme", ReplyKind.ACK, context)
    assert "as soon as we can" in text
    assert "line" not in text


def test_a_tenant_template_overrides_the_default_for_that_tenant_only(tmp_path: Path) -> None:
    templates = store(tmp_path, {"acme.ack.j2": "Hi from Acme, #{{ position }} ({{ team }})"})
    assert templates.render("acme", ReplyKind.ACK, SAMPLE_CONTEXT) == "Hi from Acme, #3 (general)"
    assert "Thanks" in templates.render("globex", ReplyKind.ACK, SAMPLE_CONTEXT)


def test_default_file_replaces_the_builtin_for_every_tenant_without_its_own(
    tmp_path: Path,
) -> None:
    templates = store(tmp_path, {"default.notice.j2": "Busy!", "acme.notice.j2": "Acme busy"})
    assert templates.render("globex", ReplyKind.NOTICE, SAMPLE_CONTEXT) == "Busy!"
    assert templates.render("acme", ReplyKind.NOTICE, SAMPLE_CONTEXT) == "Acme busy"


def test_a_changed_template_is_picked_up_without_a_restart(tmp_path: Path) -> None:
    templates = store(tmp_path, {"acme.ack.j2": "one"})
    assert templates.render("acme", ReplyKind.ACK, SAMPLE_CONTEXT) == "one"
    path = tmp_path / "acme.ack.j2"
    path.write_text("two")
    stat = path.stat()
    import os

    os.utime(path, (stat.st_atime, stat.st_mtime + 5))
    assert templates.render("acme", ReplyKind.ACK, SAMPLE_CONTEXT) == "two"


ESCAPES = [
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ tenant.__class__.__init__.__globals__ }}",
    "{{ self.__init__.__globals__['os'] }}",
    "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
    "{{ lipsum.__globals__['os'].system('id') }}",
    "{{ range.__self__ }}",
    "{% set x = tenant.upper.__self__ %}{{ x }}",
    "{{ config }}{{ request }}",
    "{{ position.__class__.__base__.__subclasses__() }}",
    "{{ ''|attr('__class__') }}",
    "{% for c in ().__class__.__base__.__subclasses__() %}{{ c }}{% endfor %}",
]


@pytest.mark.parametrize("source", ESCAPES)
def test_a_template_reaching_for_the_host_is_refused_and_the_default_used(
    tmp_path: Path, source: str
) -> None:
    templates = store(tmp_path, {"evil.ack.j2": source})
    text = templates.render("evil", ReplyKind.ACK, SAMPLE_CONTEXT)
    assert "evil.ack.j2" in templates.rejected
    assert text.startswith("Thanks, we have your message.")
    assert "class" not in text
    assert "uid=" not in text


def test_a_template_that_fails_only_on_real_values_falls_back_at_render(tmp_path: Path) -> None:
    # Renders the sample, but divides by zero when the position is 0.
    templates = store(tmp_path, {"acme.ack.j2": "{{ 10 // position }}"})
    assert templates.rejected == {}
    text = templates.render("acme", ReplyKind.ACK, {**SAMPLE_CONTEXT, "position": 0})
    assert text.startswith("Thanks")


def test_oversized_and_unknown_kind_templates_are_refused(tmp_path: Path) -> None:
    templates = store(tmp_path, {"acme.ack.j2": "x" * 5000, "acme.agent.j2": "no"})
    templates.render("acme", ReplyKind.ACK, SAMPLE_CONTEXT)
    assert set(templates.rejected) == {"acme.ack.j2", "acme.agent.j2"}


def test_output_is_capped(tmp_path: Path) -> None:
    templates = store(tmp_path, {"acme.ack.j2": "{% for t in tenant * 400 %}{{ t }}{% endfor %}"})
    assert len(templates.render("acme", ReplyKind.ACK, SAMPLE_CONTEXT)) == MAX_OUTPUT_CHARS


@pytest.mark.parametrize(
    ("seconds", "words"),
    [
        (None, ""),
        (5.0, "less than a minute"),
        (61.0, "about 1 minute"),
        (600.0, "about 10 minutes"),
        (7200.0, "about 2.0 hours"),
    ],
)
def test_waits_are_told_in_words_without_false_precision(seconds: float | None, words: str) -> None:
    assert humanize_wait(seconds) == words


@pytest.mark.parametrize(
    "source",
    [
        "{{ 'x' * 1000000000 }}",
        "{{ 2 ** 100000000 }}",
        "{% for a in tenant %}{% for b in tenant %}{{ a }}{% endfor %}{% endfor %}",
        "{% for a in tenant recursive %}{{ loop(a) }}{% endfor %}",
        "{% macro m(n) %}{{ m(n) }}{% endmacro %}{{ m(1) }}",
    ],
)
def test_templates_that_could_exhaust_memory_or_cpu_are_refused(
    tmp_path: Path, source: str
) -> None:
    templates = store(tmp_path, {"acme.ack.j2": source})
    assert templates.render("acme", ReplyKind.ACK, SAMPLE_CONTEXT).startswith("Thanks")
    assert "acme.ack.j2" in templates.rejected
