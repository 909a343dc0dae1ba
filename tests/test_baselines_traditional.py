"""REINFORCE, Optuna TPE / GP and evolution: their logic, with a Space and hand-made outcomes."""

from __future__ import annotations

import contextlib
import random
from collections.abc import Callable
from unittest import mock

import optuna
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import baselines.optuna_search as optuna_search
from baselines._flat import decode_legal, legal_graph
from baselines.evolution import Evolution, crossover, mutate
from baselines.optuna_search import OptunaGP, OptunaTPE
from baselines.reinforce import Reinforce, ReinforceBaseline
from harness.errors import BudgetError, ConfigError, GraphError
from harness.graph import FUSER, OUTPUT, Graph, Node
from harness.methods import Method, Outcome, SearchEnv, Trial, load_method
from harness.pool import load_pool
from harness.space import Space

Reward = Callable[[Graph], float]


@pytest.fixture(scope="module")
def space() -> Space:
    return Space(load_pool("llama3"), (202, 275), level=12, task="math")


class Driver:
    """Plays the harness: ask, evaluate with a toy reward, tell; counts the budget."""

    def __init__(self, method: Method, space: Space, budget: int, seed: int = 0) -> None:
        self.method, self.space, self.left = method, space, budget
        method.setup(SearchEnv(space, "math", seed, random.Random(seed), 3, lambda: self.left))
        self.trials: list[Trial] = []

    def step(self, reward: Reward, status: str = "evaluated") -> Trial:
        trial = self.method.ask()
        self.trials.append(trial)
        graph = self.space.validate(trial.graph)  # what the harness checks
        n = min(trial.questions or 3, self.left)
        if status != "evaluated":
            self.method.observe(Outcome(trial, status, graph, reason="injected"))
            return trial
        self.left -= n
        accuracy = reward(graph)
        self.method.observe(
            Outcome(
                trial, "evaluated", graph, accuracy=accuracy, correct=(accuracy > 0.5,) * n,
                flops_units=self.space.cost(graph).units, evals_used=0,
            )
        )  # fmt: skip
        return trial

    def run(self, reward: Reward) -> None:
        while self.left > 0:
            self.step(reward)


def feeds_output_from(slot: int) -> Reward:
    return lambda graph: float((slot, OUTPUT) in graph.edges)


# ----- REINFORCE ---------------------------------------------------------------------------


@pytest.mark.parametrize("cls", [Reinforce, ReinforceBaseline])
def test_reinforce_raises_the_probability_of_rewarded_edges(cls, space):
    method = cls(learn_models=False)
    driver = Driver(method, space, budget=90)
    index = method.graph.candidates.index((0, OUTPUT))
    before = method.graph.edge_probs()[index]
    driver.run(feeds_output_from(0))
    after = method.graph.edge_probs()[index]
    assert before == pytest.approx(0.5) and after > 0.8
    assert (0, OUTPUT) in method.recommend().edges


def test_reinforce_follows_the_paper_schedule_and_ends_on_the_evaluated_threshold_graph(space):
    method = Reinforce()
    driver = Driver(method, space, budget=40)
    driver.run(feeds_output_from(0))
    questions = [t.questions for t in driver.trials]
    # 12 iterations of 3 one-question samples, then the rest on the thresholded graph.
    assert questions == [1] * 36 + [4] and method.iteration == 12
    final = driver.trials[-1].graph
    assert method.recommend() == space.validate(final)
    assert method.recommend() == method.thresholded()


def test_reinforce_can_stop_after_the_papers_ten_iterations(space):
    method = Reinforce(iterations=10)
    driver = Driver(method, space, budget=40)
    driver.run(lambda graph: 0.0)
    assert [t.questions for t in driver.trials] == [1] * 30 + [10]


def test_reinforce_starts_from_a_seeded_random_combination_and_learns_models(space):
    labels = set()
    for seed in range(6):
        method = Reinforce()
        Driver(method, space, budget=40, seed=seed)
        nodes = [(i, m, "assistant") for i, m in enumerate(method.graph.models)]
        start = Graph.create(nodes, [(i, OUTPUT) for i in range(method.graph.n)], "3B")
        labels.add(space.combo_of(start).label)
        assert method.graph.model_choices == space.pool.names
    assert len(labels) > 1 and labels <= {c.label for c in space.combos()}
    again = Reinforce()
    Driver(again, space, budget=40, seed=5)
    assert again.graph.models == method.graph.models  # seeded


def test_reinforce_ignores_refused_and_failed_samples(space):
    method = Reinforce(learn_models=False)
    driver = Driver(method, space, budget=40)
    start = method.graph.flat().copy()
    for status in ("refused", "failed", "refused"):
        driver.step(feeds_output_from(0), status=status)
    driver.step(feeds_output_from(0))  # the next iteration starts: no utility, no step
    assert (method.graph.flat() == start).all() and method.iteration == 1
    driver.run(feeds_output_from(0))
    assert driver.left == 0 and method.recommend() == space.validate(driver.trials[-1].graph)


# ----- Optuna ------------------------------------------------------------------------------


def test_tpe_really_drives_optunas_tpe_sampler(space):
    method = OptunaTPE(n_startup_trials=2)
    driver = Driver(method, space, budget=24)
    driver.run(lambda graph: len(graph.nodes) / 12)
    study = method.study
    assert isinstance(study.sampler, optuna.samplers.TPESampler)
    complete = study.get_trials(states=[optuna.trial.TrialState.COMPLETE])
    assert len(complete) == 8 and len(study.trials) >= 8
    assert set(complete[0].params) == {p.name for p in space.params()}
    best = study.best_trial
    assert method.recommend() == method.graphs[best.number]
    assert best.value == max(len(g.nodes) / 12 for g in method.graphs.values())


def test_gp_really_drives_optunas_gp_sampler(space):
    method = OptunaGP(n_startup_trials=2, fixed_combo=True)
    driver = Driver(method, space, budget=12)
    relative: list[dict] = []
    original = optuna.samplers.GPSampler.sample_relative

    def spy(self, study, trial, search_space):
        params = original(self, study, trial, search_space)
        relative.append(params)
        return params

    with mock.patch.object(optuna.samplers.GPSampler, "sample_relative", spy):
        driver.run(lambda graph: float(len(graph.edges) > 4))
    assert isinstance(method.study.sampler, optuna.samplers.GPSampler)
    assert len(method.study.trials) == 4
    assert sum(1 for p in relative if p) == 2  # the GP proposed every point after the startup


def test_gp_without_torch_is_a_one_line_config_error(monkeypatch):
    monkeypatch.setattr(optuna_search, "has_torch", lambda: False)
    with pytest.raises(ConfigError, match="pip install torch"):
        load_method("optuna-gp", {})


def test_the_papers_fixed_combo_tpe_keeps_the_model_counts(space):
    method = OptunaTPE(fixed_combo=True, n_startup_trials=3)
    driver = Driver(method, space, budget=45)
    driver.run(lambda graph: float(len(graph.edges) % 2))
    assert not any(name.endswith(".model") for name in method.distributions)
    counts = {tuple(sorted(t.graph.model_counts().items())) for t in driver.trials}
    assert len(counts) == 1
    assert space.combo_of(driver.trials[0].graph).label in {c.label for c in space.combos()}


def test_infeasible_points_are_told_as_failures_and_another_is_asked(space):
    method = OptunaTPE()
    Driver(method, space, budget=9)
    calls = {"n": 0}

    def flaky(space_, values, wire_sinks=False):
        calls["n"] += 1
        if calls["n"] <= 2:
            raise GraphError("injected: every slot is off")
        return decode_legal(space_, values, wire_sinks)

    with mock.patch.object(optuna_search, "decode_legal", flaky):
        trial = method.ask()
    states = [t.state for t in method.study.trials]
    assert states[:2] == [optuna.trial.TrialState.FAIL] * 2 and space.fits(trial.graph)


def test_failed_evaluations_are_told_to_optuna_as_fail(space):
    method = OptunaTPE()
    driver = Driver(method, space, budget=9)
    driver.step(lambda g: 1.0, status="failed")
    failed_point = max(t.number for t in method.study.trials)
    driver.step(lambda g: 1.0)
    trials = method.study.trials
    assert trials[failed_point].state == optuna.trial.TrialState.FAIL
    complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert (
        len(complete) == 1
        and complete[0].number > failed_point
        and list(method.graphs) == [complete[0].number]
    )


# ----- evolution and the legalisation rules ------------------------------------------------


def test_evolution_keeps_graphs_valid_and_recommends_the_best(space):
    method = Evolution()
    driver = Driver(method, space, budget=150)
    driver.run(lambda graph: random.Random(graph.id).random())
    assert len(driver.trials) == 50
    assert len({t.graph.id for t in driver.trials}) == 50  # a child is never a repeat
    assert len(method.population) == method.population_size
    best = max(driver.trials, key=lambda t: random.Random(t.graph.id).random())
    assert method.recommend() == space.validate(best.graph)


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1))
def test_mutation_and_crossover_give_valid_graphs_within_the_cap(seed, other):
    space = Space(load_pool("llama3"), (202, 275), level=12, task="math")
    rng = random.Random(seed)
    first, second = space.sample(rng), space.sample(random.Random(other))
    for make in (lambda: mutate(first, space, rng), lambda: crossover(first, second, space, rng)):
        try:
            child = make()
        except (GraphError, BudgetError):
            continue  # no valid form (for example repair removed the output's last input): retried
        assert space.validate(child) == child and len(child.nodes) <= space.max_nodes


def test_mutation_usually_succeeds(space):
    rng = random.Random(0)
    graphs = [space.sample(rng) for _ in range(200)]
    made = 0
    for graph in graphs:
        with contextlib.suppress(GraphError, BudgetError):
            made += mutate(graph, space, rng).id != graph.id
    assert made > 150


def test_legal_graph_fixes_roles_and_wires_sinks():
    nodes = [Node(0, "1B", "assistant"), Node(1, "1B", FUSER), Node(2, "3B", FUSER)]
    graph = legal_graph(nodes, [(0, 1), (1, 2)], "3B")
    # 2 had only a fuser parent: it becomes an assistant; it is the last node, so it feeds output.
    assert [n.role for n in graph.nodes] == ["assistant", FUSER, "assistant"]
    assert graph.edges == ((0, 1), (1, 2), (2, OUTPUT))
    wired = legal_graph([Node(0, "1B", "assistant"), Node(1, "1B", "assistant")], [], "3B", True)
    assert wired.edges == ((0, OUTPUT), (1, OUTPUT))
    with pytest.raises(GraphError, match="cycle"):
        legal_graph(nodes, [(0, 1), (1, 0)], "3B")
