"""The ``rules`` agent: a deterministic offline agent, **not an LLM**.

It answers the same structured questions as an LLM (:mod:`harness.agents.questions`) by
applying PAPER.md's insights and rules explicitly, and replies with the same JSON text an LLM
must write, which the method then parses with the same strict parser. Its decisions are a
function of the question's facts alone (no randomness, no clock), so a study with it is
reproducible. Every output labels it ``rules`` (``is_llm`` False). Rules per question kind
(details in docs/agents.md):

- ``combinations`` (Insight 1): rank the candidates by estimated accuracy: the pilot's
  equal-budget accuracy where the pilot measured that combination; otherwise the mean
  single-model pilot accuracy of its nodes plus the pilot's *collaboration gain* (a measured
  multi-node combination's accuracy minus the mean single accuracy of its nodes) at the
  nearest node count. Many weak nodes have a low mean; a task whose pilot shows no gain from
  collaboration ranks one strong model first. The best ``choose`` are returned.
- ``next_graph`` and ``textgrad_graph``: see :mod:`harness.agents._rules_graph`.
- ``opro_graph``: mutate the best-scoring graph so far (add an edge, remove one, flip a role,
  change a model to the next size that fits the integer budget; the kind of mutation rotates
  with the history's length), taking the first mutation that gives a graph not seen before.
- ``hybrid_table``: per candidate edge, move the probability by half the difference between
  the mean reward of the samples that had it and of those that did not (clipped to
  [0.02, 0.98]); an edge every sample had moves by a quarter of (mean reward - 0.5).

Example:
    >>> from harness.agents import load_agent
    >>> agent = load_agent("rules")
    >>> agent.spec, agent.is_llm
    ('rules', False)
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from harness.agents._base import Agent, AgentError, AgentQuestion, AgentReply
from harness.agents._rules_graph import Design, next_graph_reply, textgrad_reply
from harness.graph import ASSISTANT, FUSER, OUTPUT

__all__ = ["RulesAgent"]


class RulesAgent(Agent):
    """Answers agent questions by explicit rules (module docstring); not an LLM.

    Its calls cost nothing and report zero tokens and zero latency, so that traces stay
    identical between runs.
    """

    spec = "rules"
    is_llm = False

    def ask(self, question: AgentQuestion) -> AgentReply:
        """The rule's reply as JSON text (raises :class:`AgentError` for an unknown kind)."""
        rule = _RULES.get(question.kind)
        if rule is None:
            raise AgentError(f"rules agent: no rule for question kind {question.kind!r}")
        reply = rule(question.facts)
        return AgentReply(json.dumps(reply), 0, 0, 0.0, 0.0)


# ----- combinations (Insight 1) ----------------------------------------------------------------


def _label_counts(label: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for part in label.split("+"):
        count, sep, model = part.partition("x")
        if not sep:
            count, model = "1", part
        counts[model] = counts.get(model, 0) + int(count)
    return counts


def combination_estimates(facts: Mapping[str, Any]) -> dict[str, float]:
    """The estimated accuracy (%) of every candidate (module docstring), by label."""
    pilot = facts["pilot"]
    single: dict[str, float] = dict(pilot["single"])
    measured: dict[str, float] = dict(pilot["combos"])
    short = {m["name"]: m["short"] for m in facts["models"]}
    floor = min(single.values(), default=0.0)

    def mean_single(counts: Mapping[str, int]) -> float:
        total = sum(counts.values())
        return sum(n * single.get(m, floor) for m, n in counts.items()) / max(total, 1)

    gains: list[tuple[int, float]] = []
    for label, accuracy in measured.items():
        counts = _label_counts(label)
        if sum(counts.values()) >= 2 and all(m in single for m in counts):
            gains.append((sum(counts.values()), accuracy - mean_single(counts)))

    def gain(size: int) -> float:
        if size < 2 or not gains:
            return 0.0
        nearest = min(abs(n - size) for n, _ in gains)
        close = [g for n, g in gains if abs(n - size) == nearest]
        return sum(close) / len(close)

    out: dict[str, float] = {}
    for cand in facts["candidates"]:
        counts = {short.get(m, m): n for m, n in cand["counts"].items()}
        if cand["label"] in measured:
            out[cand["label"]] = measured[cand["label"]]
        else:
            out[cand["label"]] = mean_single(counts) + gain(int(cand["size"]))
    return out


def _combinations(facts: Mapping[str, Any]) -> dict[str, Any]:
    estimates = combination_estimates(facts)
    sizes = {c["label"]: int(c["size"]) for c in facts["candidates"]}
    ranked = sorted(estimates, key=lambda label: (-round(estimates[label], 6), sizes[label], label))
    chosen = ranked[: int(facts["choose"])]
    shown = ", ".join(f"{label} ({estimates[label]:.1f})" for label in chosen)
    reason = (
        f"rules agent, Insight 1: estimated accuracy {shown}: the pilot's equal-budget "
        "accuracy where measured, else the mean single-model accuracy plus the pilot's "
        "collaboration gain at the nearest node count"
    )
    return {"combinations": chosen, "reason": reason}


# ----- OPRO ------------------------------------------------------------------------------------


def _signature(design: Design) -> tuple[Any, ...]:
    return (tuple(sorted((k, *v) for k, v in design.nodes.items())), tuple(sorted(design.edges)))


def _mutations(design: Design, facts: Mapping[str, Any]) -> list[list[Design]]:
    """Candidate mutations by kind: add an edge, remove one, flip a role, change a model."""
    ids = sorted(design.nodes)
    adds, removes, flips, swaps = [], [], [], []
    for src in ids:
        for dst in [*ids, OUTPUT]:
            if src != dst and (src, dst) not in design.edges and not design.closes_cycle(src, dst):
                trial = design.copy()
                trial.edges.add((src, dst))
                adds.append(trial)
    for edge in sorted(design.edges, reverse=True):
        trial = design.copy()
        trial.edges.discard(edge)
        if trial.preds(OUTPUT) and trial.connected() == set(trial.nodes):
            removes.append(trial)
    for node in ids:
        trial = design.copy()
        role = trial.nodes[node][1]
        trial.nodes[node][1] = ASSISTANT if role == FUSER else FUSER
        if role == FUSER or trial.can_fuse(node):
            trial.fix_roles()
            flips.append(trial)
    models = [m["name"] for m in facts["models"]]
    cost = {m["name"]: int(m["cost"]) for m in facts["models"]}
    used = sum(cost[v[0]] for v in design.nodes.values())
    for node in reversed(ids):
        position = models.index(design.nodes[node][0])
        for step in (1, -1):
            if 0 <= position + step < len(models):
                other = models[position + step]
                if used - cost[design.nodes[node][0]] + cost[other] <= int(facts["level"]):
                    trial = design.copy()
                    trial.nodes[node][0] = other
                    swaps.append(trial)
    return [adds, removes, flips, swaps]


def _opro(facts: Mapping[str, Any]) -> dict[str, Any]:
    history = list(facts["history"])
    best = max(enumerate(history), key=lambda pair: (pair[1]["score"], pair[0]))[1]
    design = Design.of(best["graph"])
    for node in sorted(set(design.nodes) - design.connected()):
        design.edges.add((node, OUTPUT))  # an idle node of the best graph is wired in
    seen = {_signature(Design.of(past["graph"])) for past in history}
    kinds = _mutations(design, facts)
    start = len(history) % len(kinds)
    names = ("added an edge", "removed an edge", "flipped a role", "changed a model")
    for offset in range(len(kinds)):
        kind = (start + offset) % len(kinds)
        for trial in kinds[kind]:
            if _signature(trial) not in seen:
                reason = f"rules agent: {names[kind]} of the best graph so far"
                return {"graph": trial.reply_graph(), "reason": reason}
    return {"graph": design.reply_graph(), "reason": "rules agent: no new mutation; the best"}


# ----- hybrid ----------------------------------------------------------------------------------


def _hybrid(facts: Mapping[str, Any]) -> dict[str, Any]:
    samples = [(Design.of(s["graph"]).edges, float(s["accuracy"])) for s in facts["samples"]]
    rows = []
    for src, dst, p in facts["edge_table"]:
        edge = (int(src), OUTPUT if dst == "output" else int(dst))
        on = [r for edges, r in samples if edge in edges]
        off = [r for edges, r in samples if edge not in edges]
        if on and off:
            new = p + 0.5 * (sum(on) / len(on) - sum(off) / len(off))
        elif on:
            new = p + 0.25 * (sum(on) / len(on) - 0.5)
        else:
            continue
        new = round(min(0.98, max(0.02, new)), 3)
        if new != round(p, 3):
            rows.append([src, dst, new])
    reason = "rules agent: each edge moved by the reward difference of samples with and without it"
    return {"edge_table": rows, "reason": reason}


_RULES: dict[str, Callable[[Mapping[str, Any]], dict[str, Any]]] = {
    "combinations": _combinations,
    "next_graph": next_graph_reply,
    "textgrad_graph": textgrad_reply,
    "opro_graph": _opro,
    "hybrid_table": _hybrid,
}
