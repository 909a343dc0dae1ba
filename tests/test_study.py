"""The protocol loop: budget, refusals, failures, checkpoints, traces, determinism."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from harness.errors import BudgetError, ConfigError
from harness.graph import Graph
from harness.methods import Method, Outcome, Trial
from harness.protocol import Budget, Ledger, load_protocol
from harness.study import Bench, QuestionStream
from harness.trace import read_trace, without_times

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bench() -> Bench:
    return Bench("math", load_protocol("paper"), "sim")


# ----- test doubles for fault injection (their names say so) ----------------------------------


class FaultInjectingMethod(Method):
    """Raises in ask every other call, in tell always, and in recommend."""

    name = "fault-injecting"

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def ask(self) -> Trial:
        self.calls += 1
        if self.calls % 2:
            raise RuntimeError("injected ask failure")
        return Trial(self.space.sample(self.rng))

    def tell(self, outcome: Outcome) -> None:
        raise ValueError("injected tell failure")

    def recommend(self) -> Graph:
        raise KeyError("injected recommend failure")


class OverCapProposerForFaultInjection(Method):
    """Proposes an over-cap graph every other call; otherwise a valid one on 2 questions."""

    name = "over-cap-proposer"

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0
        self.refused: list[str | None] = []

    def ask(self) -> Trial:
        self.calls += 1
        if self.calls % 2:
            big = [(i, "70B", "assistant") for i in range(3)]
            return Trial(Graph.create(big, [(i, "output") for i in range(3)], "3B"))
        return Trial(self.space.sample(self.rng), questions=2)

    def tell(self, outcome: Outcome) -> None:
        if outcome.status == "refused":
            self.refused.append(outcome.reason)


def run_instance(bench: Bench, method: Method, seed: int, out: Path | None = None):
    """Run a study with a method instance (bypassing the registry)."""
    import harness.study as study

    original = study.load_method
    study.load_method = lambda name, options: method  # type: ignore[assignment]
    try:
        return bench.run(method.name, {}, seed=seed, out_dir=out)
    finally:
        study.load_method = original


# ----- budget ----------------------------------------------------------------------------------


def test_ledger_refuses_past_the_budget():
    ledger = Ledger(Budget(question_evals=5, batch_size=3, level=12, max_nodes=12))
    assert ledger.grant(None) == 3
    ledger.charge(3)
    assert ledger.grant(None) == 2 and ledger.grant(10) == 2
    with pytest.raises(BudgetError, match="3 question evaluations asked, 2 left of 5"):
        ledger.charge(3)
    assert ledger.used == 3  # a refused charge charges nothing
    ledger.charge(2)
    assert ledger.question_evals_left == 0 and ledger.grant(None) == 0


def test_budget_is_spent_exactly(bench, tmp_path):
    result = bench.run("random", {}, seed=0, out_dir=tmp_path)
    records = read_trace(tmp_path / "trace.jsonl")
    evaluations = [r for r in records if r["type"] == "evaluation"]
    assert result.evals_used == 40
    assert sum(len(r["questions"]) for r in evaluations) == 40
    assert [len(r["questions"]) for r in evaluations] == [3] * 13 + [1]
    assert records[-1]["type"] == "final" and records[-1]["evals_used"] == 40


def test_over_cap_graphs_are_refused_and_not_charged(bench, tmp_path):
    method = OverCapProposerForFaultInjection()
    result = run_instance(bench, method, seed=0, out=tmp_path)
    records = read_trace(tmp_path / "trace.jsonl")
    refusals = [r for r in records if r["type"] == "refusal"]
    evaluations = [r for r in records if r["type"] == "evaluation"]
    assert result.evals_used == 40 and len(evaluations) == 20  # 2 questions each
    assert len(refusals) == result.refusals == 20
    assert all("over the cap" in r["reason"] for r in refusals)
    assert method.refused and all("over the cap" in (m or "") for m in method.refused)
    assert all(r["evals_used"] % 2 == 0 for r in refusals)  # nothing charged for refusals


def test_a_failing_method_is_recorded_and_the_study_finishes(bench, tmp_path):
    result = run_instance(bench, FaultInjectingMethod(), seed=0, out=tmp_path)
    records = read_trace(tmp_path / "trace.jsonl")
    events = [r for r in records if r["type"] == "event"]
    where = {e["where"] for e in events}
    assert where == {"ask", "tell", "recommend"}
    assert any("injected ask failure" in e["error"] for e in events)
    assert result.evals_used == 40
    assert records[-1]["type"] == "final"
    # The fallback recommendation is a graph the study evaluated.
    evaluated = {r["graph_id"] for r in records if r["type"] == "evaluation"}
    assert records[-1]["graph_id"] in evaluated


def test_a_method_that_fails_in_setup_still_yields_a_study(bench):
    class BrokenSetupForFaultInjection(FaultInjectingMethod):
        name = "broken-setup"

        def setup(self, env):
            raise OSError("injected setup failure")

    result = run_instance(bench, BrokenSetupForFaultInjection(), seed=0)
    assert result.evals_used == 40
    assert result.events[0]["where"] == "setup"


# ----- question stream, checkpoints, held-out scoring ----------------------------------------


def test_question_stream_is_seeded_and_the_same_for_every_method(bench, tmp_path):
    seen = {}
    for method in ("random", "parallel", "chain"):
        bench.run(method, {}, seed=3, out_dir=tmp_path / method)
        records = read_trace(tmp_path / method / "trace.jsonl")
        seen[method] = [q for r in records if r["type"] == "evaluation" for q in r["questions"]]
    assert seen["random"] == seen["parallel"] == seen["chain"]
    other = QuestionStream(bench.data.search, seed=4).take(40)[0]
    assert [q.id for q in other] != seen["random"]


def test_question_stream_wraps_with_a_new_epoch():
    from harness.tasks import Item

    items = tuple(Item(str(i), f"q{i}", "a") for i in range(4))
    stream = QuestionStream(items, seed=0)
    first, epoch0 = stream.take(4)
    again, epoch1 = stream.take(4)
    assert (epoch0, epoch1) == (0, 1)
    assert sorted(q.id for q in first) == sorted(q.id for q in again)


def test_checkpoints_score_the_recommendation_on_heldout(bench, tmp_path):
    result = bench.run("random", {}, seed=1, out_dir=tmp_path)
    records = read_trace(tmp_path / "trace.jsonl")
    checkpoints = [r for r in records if r["type"] == "checkpoint"]
    assert [c["evals_used"] for c in checkpoints] == [6, 12, 18, 24, 30, 36, 40]
    assert result.checkpoints[-1][1] == records[-1]["heldout_accuracy"] == result.heldout_accuracy
    assert result.heldout_n == len(bench.heldout) == 300
    assert all(0 <= c["heldout_accuracy"] <= 1 for c in checkpoints)


def test_manifest_records_provenance(bench, tmp_path):
    bench.run("parallel", {"width": 3}, seed=2, out_dir=tmp_path)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["method"] == {
        "name": "parallel",
        "version": "1",
        "options": {"model": "3B", "width": 3, "output_model": None, "questions": None},
    }
    assert manifest["task"]["name"] == "math" and manifest["seed"] == 2
    assert manifest["backend"]["name"] == "sim"
    assert manifest["protocol"]["question_evals"] == 40
    assert manifest["versions"]["harness"] and manifest["versions"]["numpy"]
    assert "git" in manifest


def test_unknown_method_and_bad_options_fail_before_writing(bench, tmp_path):
    with pytest.raises(ConfigError, match="unknown method 'nope'"):
        bench.run("nope", {}, out_dir=tmp_path / "a")
    with pytest.raises(ConfigError, match="bad options"):
        bench.run("random", {"colour": "red"}, out_dir=tmp_path / "b")
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


# ----- determinism -----------------------------------------------------------------------------


def test_same_study_twice_gives_identical_traces(bench, tmp_path):
    for name in ("one", "two"):
        bench.run("random", {}, seed=5, out_dir=tmp_path / name)
    one = without_times(read_trace(tmp_path / "one" / "trace.jsonl"))
    two = without_times(read_trace(tmp_path / "two" / "trace.jsonl"))
    assert one == two


def test_same_study_in_another_process_gives_the_same_trace(bench, tmp_path):
    bench.run("random", {}, seed=6, out_dir=tmp_path / "here")
    code = (
        "import sys; from pathlib import Path; from harness.study import Bench; "
        "from harness.protocol import load_protocol; "
        "Bench('math', load_protocol('paper'), 'sim').run('random', {}, seed=6, "
        "out_dir=Path(sys.argv[1]))"
    )
    subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "there")], check=True, cwd=REPO, timeout=120
    )
    here = without_times(read_trace(tmp_path / "here" / "trace.jsonl"))
    there = without_times(read_trace(tmp_path / "there" / "trace.jsonl"))
    assert here == there


def test_trace_survives_a_torn_last_line(tmp_path, bench):
    bench.run("chain", {}, seed=0, out_dir=tmp_path)
    path = tmp_path / "trace.jsonl"
    records = read_trace(path)
    with path.open("a") as handle:
        handle.write('{"schema": 1, "type": "evalu')
    with pytest.warns(UserWarning, match="torn last record"):
        assert read_trace(path) == records
