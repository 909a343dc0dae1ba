"""What a study can cost at most, before any call: ``harness eval --dry-run``.

The bound follows the protocol, not a method: every question evaluation runs the largest graph
the space allows (``n`` agent nodes, ``n = min(max_nodes, (combo_budget - c) // c)`` where
``c`` is the cheapest combination cost, since the output node pays in the integer budget too;
every node reading every earlier one), and every checkpoint plus the final score runs
such a graph on the whole held-out subset. A call's prompt is at most the task's question
prompt ``A`` plus one input per predecessor, each at most the model's ``max_tokens`` (the task's
``B`` on ``sim``); its output at most ``max_tokens``. Dollars use the dearest model's prices.
Cache hits would make fewer real calls; an LLM agent's own calls are not included (they are in
the agent's ledger).

Example:
    >>> from harness.study import Bench
    >>> from harness.protocol import load_protocol
    >>> plan = study_plan(Bench("math", load_protocol("paper"), data_dir="../shared/data"), 1)
    >>> plan["max_agent_nodes"], plan["search"]["calls"]
    (12, 520)
"""

from __future__ import annotations

from typing import Any

__all__ = ["format_plan", "study_plan"]


def study_plan(bench: Any, seeds: int) -> dict[str, Any]:
    """The most calls, tokens and dollars ``seeds`` studies on ``bench`` can need.

    Args:
        bench: a :class:`harness.study.Bench` (typed loosely: the study module imports this one).
        seeds: number of studies.
    """
    protocol, pool, space = bench.protocol, bench.pool, bench.space
    prompt_a, output_b = bench.task.lengths
    routes = getattr(bench.backend, "routes", {}) or {}
    max_out = max(
        (int(r.generation.get("max_tokens") or output_b) for r in routes.values()),
        default=output_b,
    )
    cheapest = min(pool.combo_cost(m.name, space.task) for m in pool.models)
    # The output node pays in the integer budget too; the cheapest one leaves the most for agents.
    nodes = max(1, min(space.max_nodes, (space.combo_budget - cheapest) // cheapest))
    # n agent nodes where node i reads the i before it, then an output node reading all n.
    calls_per_question = nodes + 1
    inputs = nodes * (nodes - 1) // 2 + nodes
    prompt_per_question = calls_per_question * prompt_a + inputs * max_out
    output_per_question = calls_per_question * max_out

    def part(questions: int) -> dict[str, int]:
        return {
            "question_evals": questions,
            "calls": questions * calls_per_question,
            "prompt_tokens": questions * prompt_per_question,
            "output_tokens": questions * output_per_question,
        }

    search = part(protocol.budget.question_evals)
    scorings = len(protocol.checkpoints()) + 1
    heldout = part(scorings * len(bench.heldout))
    per_study = {k: search[k] + heldout[k] for k in search}
    total = {k: v * seeds for k, v in per_study.items()}
    prices = [(m.price_in, m.price_out) for m in pool.models]
    dollars = None
    if all(p_in is not None and p_out is not None for p_in, p_out in prices):
        price_in = max(p for p, _ in prices if p is not None)
        price_out = max(p for _, p in prices if p is not None)
        dollars = (total["prompt_tokens"] * price_in + total["output_tokens"] * price_out) / 1e6
    return {
        "backend": bench.backend.name,
        "pool": pool.name,
        "seeds": seeds,
        "max_agent_nodes": nodes,
        "max_output_tokens": max_out,
        "search": search,
        "heldout": heldout,
        "per_study": per_study,
        "total": total,
        "dollars_at_most": dollars,
    }


def format_plan(plan: dict[str, Any]) -> str:
    """The plan as a few lines for the terminal."""
    total, per = plan["total"], plan["per_study"]
    dollars = plan["dollars_at_most"]
    cost = "unknown (a model of the pool has no price)" if dollars is None else f"${dollars:,.2f}"
    where = (
        "sim: no real calls are made"
        if plan["backend"] == "sim"
        else "replay: zero network calls, every call must be in the cache"
        if plan["backend"] == "replay"
        else "live: cache hits make fewer real calls"
    )
    return "\n".join(
        [
            f"dry run: {plan['seeds']} stud{'y' if plan['seeds'] == 1 else 'ies'} on pool "
            f"{plan['pool']} ({where}); nothing was called",
            f"at most {total['calls']:,} calls ({per['calls']:,} per study: "
            f"{plan['search']['calls']:,} search, {plan['heldout']['calls']:,} held-out), "
            f"graphs of up to {plan['max_agent_nodes']} agent nodes",
            f"at most {total['prompt_tokens']:,} prompt tokens and {total['output_tokens']:,} "
            f"output tokens (replies up to {plan['max_output_tokens']} tokens)",
            f"at most {cost}; an LLM agent's own calls are extra (see its ledger)",
        ]
    )
