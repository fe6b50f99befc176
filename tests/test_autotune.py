"""The encoder's measured defaults (router/core/autotune.py): the rule that picks threads and
texts per call, the cores a process counts as its own, and a real measurement at start-up.
The rule is tested on given times; the real measurement only for what it must produce."""

from __future__ import annotations

import pytest

from router.core import autotune
from router.core.autotune import (
    EncoderPlan,
    _fewest_within,
    cores_for_this_process,
    plan_encoder,
)
from router.core.config import EncoderSpec


def test_a_thread_more_must_pay_for_itself():
    gain = autotune.THREAD_GAIN
    assert _fewest_within({1: 10.0, 2: 9.0}, gain) == 1  # 10% faster: not worth a core
    assert _fewest_within({1: 10.0, 2: 6.0}, gain) == 2
    assert _fewest_within({1: 10.0, 2: 6.0, 3: 5.8}, gain) == 2
    assert _fewest_within({1: 5.0, 2: 7.0}, gain) == 1  # slower with two (a busy machine)


def test_cores_are_shared_among_the_router_processes(monkeypatch):
    cpus = cores_for_this_process(1)
    monkeypatch.setenv(autotune.PROCESSES_ENV, str(cpus))
    assert cores_for_this_process() == 1
    monkeypatch.setenv(autotune.PROCESSES_ENV, str(cpus * 4))
    assert cores_for_this_process() == 1  # never below one
    monkeypatch.delenv(autotune.PROCESSES_ENV)
    assert cores_for_this_process() == cpus
    monkeypatch.setenv(autotune.PROCESSES_ENV, "two")
    with pytest.raises(ValueError, match="ROUTER_PROCESSES"):
        cores_for_this_process()


class FakeEncoder:
    per_text = False

    def __init__(self, threads: int) -> None:
        self.threads = threads
        self.calls = 0

    def _embed(self, texts):
        self.calls += 1


@pytest.fixture(autouse=True)
def fresh_measurements(monkeypatch):
    monkeypatch.setattr(autotune, "_threads_measured", {})
    monkeypatch.setattr(autotune, "_batches_measured", {})


def test_set_threads_are_used_as_they_are():
    built = []

    def build(n):
        built.append(n)
        return FakeEncoder(n)

    enc, plan = plan_encoder(build, 2, "fake", 128, cores=4)
    assert built == [2] and enc.threads == 2
    assert (plan.threads, plan.lanes, plan.cores, plan.threads_measured) == (2, 2, 4, False)


def test_one_core_leaves_nothing_to_measure():
    built = []

    def build(n):
        built.append(n)
        return FakeEncoder(n)

    enc, plan = plan_encoder(build, "auto", "fake", 128, cores=1)
    assert built == [1] and plan.threads == 1 and plan.lanes == 1
    assert not plan.threads_measured and plan.timings_ms.keys() <= {
        f"batch_{b}_per_text" for b in autotune.BATCH_SIZES
    }


def test_auto_measures_every_count_within_the_cores_once_per_process():
    built = []

    def build(n):
        built.append(n)
        return FakeEncoder(n)

    enc, plan = plan_encoder(build, "auto", "fake", 128, cores=3)
    assert sorted(built) == [1, 2, 3] and plan.threads_measured
    assert set(plan.timings_ms) >= {"threads_1", "threads_2", "threads_3"}
    assert enc.threads == plan.threads and plan.lanes == 3 // plan.threads
    built.clear()
    _, again = plan_encoder(build, "auto", "fake", 128, cores=3)
    assert built == [plan.threads] and again.threads == plan.threads  # measured once


def test_a_per_text_encoder_shares_no_call():
    class PerText(FakeEncoder):
        per_text = True

    _, plan = plan_encoder(PerText, 1, "per-text", 128, cores=2)
    assert plan.batch == 1 and not any(k.startswith("batch_") for k in plan.timings_ms)


def test_the_real_encoder_runs_with_the_measured_threads():
    from router.core.encoder import load_encoder

    enc = load_encoder("minilm-q8", threads="auto", cores=2)
    plan = enc.plan
    assert isinstance(plan, EncoderPlan) and plan.threads_measured
    assert plan.threads in (1, 2) and plan.lanes == 2 // plan.threads and plan.batch == 1
    assert set(plan.timings_ms) == {"threads_1", "threads_2"}
    assert enc._session.get_session_options().intra_op_num_threads == plan.threads
    assert enc.encode(["what is 2 + 2?"]).shape == (1, enc.dim)


def test_threads_setting_is_auto_or_a_count():
    assert EncoderSpec().threads == "auto"
    assert EncoderSpec(threads=3).threads == 3
    for bad in ("many", 0, 65, True, 1.5):
        with pytest.raises(ValueError, match="threads is 'auto' or a whole number"):
            EncoderSpec(threads=bad)
