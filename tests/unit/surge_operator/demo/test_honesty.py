"""How the demo summarises predicted against actual waits."""

from __future__ import annotations

from surge_operator.demo.honesty import Honesty, Sample, summarise, summary_fields, worst


def test_relative_error_per_priority_and_overall() -> None:
    samples = [
        Sample("normal", predicted=1.0, actual=1.0, msg_id="a"),
        Sample("normal", predicted=1.5, actual=1.0, msg_id="b"),
        Sample("normal", predicted=3.0, actual=1.0, msg_id="c"),
        Sample("critical", predicted=0.1, actual=0.2, msg_id="d"),
    ]
    table = summarise(samples)
    assert table["normal"] == {"n": 3, "median": 0.5, "p90": 2.0}
    assert table["critical"] == {"n": 1, "median": 0.5, "p90": 0.5}
    assert table["all"]["n"] == 4
    assert [s.msg_id for s in worst(samples, 2)] == ["c", "b"]


def test_summary_fields_follow_the_contract() -> None:
    honesty = Honesty(replies_sent=5, conversations=4, by_kind={"ack": 4, "notice": 1})
    honesty.samples = [Sample("bulk", predicted=2.0, actual=2.5, msg_id="x")]
    fields = summary_fields(honesty)
    assert fields["replies_sent"] == 5
    assert fields["eta_error_median"] == 0.2
    assert fields["eta_error"]["bulk"]["p90"] == 0.2


def test_no_samples_means_no_median_rather_than_zero() -> None:
    assert summary_fields(Honesty())["eta_error_median"] is None


def test_acknowledgements_without_a_promise_are_counted_per_priority() -> None:
    honesty = Honesty(no_prediction=3, no_prediction_by_priority={"normal": 1, "bulk": 2})
    fields = summary_fields(honesty)
    assert fields["acks_without_prediction"] == 3
    assert fields["acks_without_prediction_by_priority"] == {"bulk": 2, "normal": 1}
