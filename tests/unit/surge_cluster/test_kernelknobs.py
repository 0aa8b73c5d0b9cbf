from __future__ import annotations

from pathlib import Path

from surge_cluster.kernelknobs import KUBELET_KNOBS, restore, save_baseline


def _fake_proc(tmp_path: Path, value: str) -> Path:
    root = tmp_path / "sys"
    for knob in KUBELET_KNOBS:
        (root / knob).parent.mkdir(parents=True, exist_ok=True)
        (root / knob).write_text(value + "\n")
    return root


def test_values_found_before_the_first_kubelet_are_put_back(tmp_path: Path) -> None:
    proc = _fake_proc(tmp_path, "0")
    baseline = tmp_path / "baseline.json"

    save_baseline(baseline, proc)
    (proc / "kernel/panic_on_oops").write_text("1\n")  # what a kubelet does
    save_baseline(baseline, proc)  # a second cluster must not record the changed value
    restored = restore(baseline, proc)

    assert restored["kernel/panic_on_oops"] == "0"
    assert (proc / "kernel/panic_on_oops").read_text() == "0"
    assert not baseline.exists()


def test_restore_without_a_baseline_does_nothing(tmp_path: Path) -> None:
    assert restore(tmp_path / "missing.json", _fake_proc(tmp_path, "1")) == {}
