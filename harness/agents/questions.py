"""Structured agent questions: the facts as data, the prompt rendered from them (PAPER.md s. 7).

A method builds a question's *facts* (plain JSON data) with the helpers here and calls
:func:`make_question`; the chat messages an LLM reads are rendered from the same facts by the
templates in ``harness/agents/prompts/``, so an LLM and the offline ``rules`` agent always see
the same content. Question kinds and the JSON reply each asks for:

- ``combinations``: which model combinations to try -> ``{"combinations": [LABEL, ...]}``;
- ``next_graph`` (Agent-REINFORCE) and ``textgrad_graph`` (TextGrad): the next graph and the
  updated edge table -> ``{"graph": {"nodes": [...], "edges": [...]}, "edge_table": [...]}``;
- ``opro_graph`` (OPRO): a new graph from the scored history -> ``{"graph": {...}}``;
- ``hybrid_table`` (hybrid): a rewritten edge table -> ``{"edge_table": [...]}``.

Example:
    >>> from harness.graph import Graph
    >>> g = Graph.create([(0, "1B", "assistant")], [(0, "output")], "3B")
    >>> print(design_text(design_facts(g, ["1B", "3B"])))
    0 | 1B | assistant | in: - | out: output
    1 | 3B | assistant | in: - | out: -  (no path to the output node: not run)
    output | 3B | output | in: 0 | out: -
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from importlib import resources
from string import Template
from typing import Any

from harness.agents._base import AgentQuestion
from harness.agents._schemas import SCHEMAS
from harness.graph import OUTPUT, Graph
from harness.pool import Pool
from harness.space import Combo

__all__ = [
    "KINDS",
    "SCHEMAS",
    "combo_facts",
    "design_facts",
    "design_text",
    "make_question",
    "model_facts",
    "pilot_facts",
    "prompt_template",
    "round_facts",
    "with_feedback",
]

KINDS = ("combinations", "next_graph", "textgrad_graph", "opro_graph", "hybrid_table")

_TEMPLATE_OF = {
    "combinations": "combinations",
    "next_graph": "next_graph",
    "textgrad_graph": "textgrad",
    "opro_graph": "opro",
    "hybrid_table": "hybrid",
}


def prompt_template(name: str) -> str:
    """The text of ``harness/agents/prompts/{name}.md`` (shipped inside the package).

    Example:
        >>> "Insight" in prompt_template("insights") or "Insights" in prompt_template("insights")
        True
    """
    return (resources.files("harness.agents") / "prompts" / f"{name}.md").read_text("utf-8")


# ----- facts -----------------------------------------------------------------------------------


def model_facts(pool: Pool, task: str) -> list[dict[str, Any]]:
    """The pool's models, smallest first: name, short alias, parameters, integer cost."""
    return [
        {
            "name": m.name,
            "short": m.short,
            "params": m.params,
            "cost": pool.combo_cost(m.name, task),
        }
        for m in pool.models
    ]


def combo_facts(combo: Combo) -> dict[str, Any]:
    """A combination as data: its label, integer cost, size and count per (full) model name."""
    return {
        "label": combo.label,
        "cost": combo.cost,
        "size": combo.size,
        "counts": {name: count for name, count in combo.counts},
    }


def pilot_facts(pilot: Mapping[str, Any]) -> dict[str, Any]:
    """The parts of :func:`harness.pilot.run_pilot`'s tables an agent reads, JSON-normalised."""
    insights = pilot.get("insights", {})
    settings = pilot.get("settings", {})

    def keyed(table: Mapping[str, Mapping[Any, Any]]) -> dict[str, dict[str, int]]:
        return {m: {str(k): int(v) for k, v in row.items()} for m, row in table.items()}

    return {
        "backend": pilot.get("backend", "unknown"),
        "single": {row["short"]: float(row["accuracy"]) for row in pilot.get("single", [])},
        "combos": {row["combo"]: float(row["accuracy"]) for row in pilot.get("combos", [])},
        "width": {m: [float(v) for v in row] for m, row in pilot.get("width", {}).items()},
        "depth": {m: [float(v) for v in row] for m, row in pilot.get("depth", {}).items()},
        "sweep": [int(v) for v in settings.get("sweep", range(1, 9))],
        "best_width": {m: int(v) for m, v in insights.get("best_width", {}).items()},
        "best_depth": {m: int(v) for m, v in insights.get("best_depth", {}).items()},
        "best_width_by_depth": keyed(insights.get("best_width_by_depth", {})),
        "best_depth_by_width": keyed(insights.get("best_depth_by_width", {})),
    }


def design_facts(graph: Graph, slots: Sequence[str] | None = None) -> dict[str, Any]:
    """A graph as data, with every slot of its combination.

    ``slots`` gives the model of each node id ``0..n-1``; ids the graph lacks (dropped for want
    of a path to the output node, or deleted by the budget repair) are listed as idle
    assistants with ``executed: false``, so an agent can wire them back in.
    """
    present = {node.id: node for node in graph.nodes}
    ids = range(len(slots)) if slots is not None else sorted(present)
    nodes = []
    for node_id in sorted(set(ids) | set(present)):
        node = present.get(node_id)
        if node is not None:
            nodes.append({"id": node_id, "model": node.model, "role": node.role, "executed": True})
        elif slots is not None:
            nodes.append(
                {"id": node_id, "model": slots[node_id], "role": "assistant", "executed": False}
            )
    edges = [[src, "output" if dst == OUTPUT else dst] for src, dst in graph.edges]
    return {"nodes": nodes, "edges": edges, "output_model": graph.output_model}


def design_text(design: Mapping[str, Any]) -> str:
    """The text form of :func:`design_facts` (the graph's text form plus idle nodes)."""
    preds: dict[Any, list[str]] = {n["id"]: [] for n in design["nodes"]}
    succs: dict[Any, list[str]] = {n["id"]: [] for n in design["nodes"]}
    preds["output"] = []
    for src, dst in design["edges"]:
        preds[dst].append(str(src))
        succs[src].append(str(dst))

    def names(items: list[str]) -> str:
        ordered = sorted(items, key=lambda s: (s == "output", int(s) if s.isdigit() else 0))
        return ", ".join(ordered) or "-"

    lines = []
    for node in design["nodes"]:
        line = f"{node['id']} | {node['model']} | {node['role']} | in: {names(preds[node['id']])}"
        line += f" | out: {names(succs[node['id']])}"
        if not node.get("executed", True):
            line += "  (no path to the output node: not run)"
        lines.append(line)
    out = design["output_model"]
    lines.append(f"output | {out} | output | in: {names(preds['output'])} | out: -")
    return "\n".join(lines)


def round_facts(
    graph: Graph,
    slots: Sequence[str] | None,
    accuracy: float,
    questions: int,
    latency_s: float | None,
    score: float,
) -> dict[str, Any]:
    """One evaluated round as data: the graph (all slots), its text, accuracy, latency, score."""
    design = design_facts(graph, slots)
    return {
        "graph": design,
        "text": design_text(design),
        "accuracy": round(float(accuracy), 4),
        "questions": int(questions),
        "latency_s": None if latency_s is None else round(float(latency_s), 4),
        "score": round(float(score), 4),
    }


# ----- rendering -------------------------------------------------------------------------------


def make_question(kind: str, facts: Mapping[str, Any]) -> AgentQuestion:
    """The question of ``kind``: facts as given, messages rendered from the prompt files.

    Raises:
        ValueError: an unknown kind.
    """
    if kind not in _TEMPLATE_OF:
        raise ValueError(f"unknown question kind {kind!r} (known: {', '.join(KINDS)})")
    values = _RENDERERS[kind](facts)
    values["schema"] = json.dumps(SCHEMAS[kind], separators=(",", ":"))
    user = Template(prompt_template(_TEMPLATE_OF[kind])).substitute(values)
    messages = (
        {"role": "system", "content": prompt_template("system").strip()},
        {"role": "user", "content": _tidy(user)},
    )
    return AgentQuestion(kind, messages, dict(facts), SCHEMAS[kind])


def with_feedback(question: AgentQuestion, reply: str, error: str) -> AgentQuestion:
    """The same question, followed by the invalid reply and what was wrong with it."""
    hint = f"Your reply was invalid: {error}; reply again with one JSON object as required."
    messages = (
        *question.messages,
        {"role": "assistant", "content": reply},
        {"role": "user", "content": hint},
    )
    facts = {**question.facts, "feedback": error}
    return AgentQuestion(question.kind, messages, facts, question.json_schema)


def _tidy(text: str) -> str:
    # Optional sections render empty; collapse the blank runs they leave behind.
    lines = text.strip().splitlines()
    out: list[str] = []
    for line in lines:
        if line.strip() or (out and out[-1].strip()):
            out.append(line.rstrip())
    return "\n".join(out)


def _pct(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".")


def _costs(models: Sequence[Mapping[str, Any]]) -> str:
    return ", ".join(f"{m['short']} = {m['cost']}" for m in models)


def _pilot_text(pilot: Mapping[str, Any], combos: bool = True) -> str:
    lines = []
    if combos and pilot["single"]:
        row = ", ".join(f"{m} {_pct(a)}" for m, a in pilot["single"].items())
        lines.append(f"Single model, one call: {row}.")
    if combos and pilot["combos"]:
        row = "; ".join(f"{label} {_pct(a)}" for label, a in pilot["combos"].items())
        lines.append(f"Random graphs at equal budget (combination: accuracy): {row}.")
    sweep = pilot["sweep"]
    span = f"{sweep[0]}..{sweep[-1]}" if sweep else "-"
    for name, title in (("width", "parallel assistants into the output node"), ("depth", "chain")):
        for model, row in pilot[name].items():
            values = ", ".join(_pct(v) for v in row)
            what = f"w = {span} {title}" if name == "width" else f"a {title} of d = {span} nodes"
            lines.append(f"{name.capitalize()} sweep, all {model} ({what}): {values}.")
    for model in pilot["best_width"]:
        best = f"best width {pilot['best_width'][model]}, best depth {pilot['best_depth'][model]}"
        by_w = pilot["best_depth_by_width"].get(model, {})
        by_d = pilot["best_width_by_depth"].get(model, {})
        extra = ""
        if by_w and by_d:
            extra = "; best depth at width " + ", ".join(f"{w}: {d}" for w, d in by_w.items())
            extra += "; best width at depth " + ", ".join(f"{d}: {w}" for d, w in by_d.items())
        lines.append(f"{model}: {best}{extra}.")
    return "\n".join(lines)


def _render_combinations(facts: Mapping[str, Any]) -> dict[str, Any]:
    candidates = facts["candidates"]
    return {
        "task": facts["task"],
        "model_costs": _costs(facts["models"]),
        "level": facts["level"],
        "insights": prompt_template("insights").strip(),
        "backend": facts["pilot"]["backend"],
        "pilot": _pilot_text(facts["pilot"]),
        "candidates": "\n".join(f"- {c['label']} (cost {c['cost']})" for c in candidates),
        "choose": facts["choose"],
        "example": ", ".join(['"LABEL"'] * int(facts["choose"])),
    }


def _counts_text(facts: Mapping[str, Any]) -> str:
    return ", ".join(f"{n} x {model}" for model, n in facts["combination"]["counts"].items())


def _round_header(round_: Mapping[str, Any], facts: Mapping[str, Any]) -> str:
    text = f"accuracy {round_['accuracy']:.3f} on {round_['questions']} questions"
    if facts.get("objective") == "accuracy-latency" and round_.get("latency_s") is not None:
        text += f", latency {round_['latency_s']:.2f} s, score {round_['score']:.3f}"
    return text


def _render_graph_loop(facts: Mapping[str, Any]) -> dict[str, Any]:
    last = facts["last"]
    history = facts.get("history") or []
    if history:
        prev = history[-1]
        past = f"Previous graph ({_round_header(prev, facts)}):\n{prev['text']}"
    else:
        past = "No earlier graph."
    latency = latency_rule = ""
    if facts.get("objective") == "accuracy-latency":
        ref, weight = facts["latency_ref_s"], facts["latency_weight"]
        latency = (
            f"Its latency: {last['latency_s']:.2f} s per question (the critical path); "
            f"reference: {ref:.2f} s, one call of the output model alone. Objective: accuracy "
            f"- {weight:g} x latency / {ref:.2f} s; the last score was {last['score']:.3f}."
        )
        latency_rule = (
            "- Cut the latency while keeping the accuracy: fewer nodes on the longest chain, "
            "smaller in-degree, sparser graphs."
        )
    n = len(last["graph"]["nodes"])
    values: dict[str, Any] = {
        "task": facts["task"],
        "combination": facts["combination"]["label"],
        "output_model": facts["output_model"],
        "iteration": facts["iteration"],
        "questions": last["questions"],
        "accuracy": f"{last['accuracy']:.3f}",
        "latency": latency,
        "latency_rule": latency_rule,
        "last_graph": last["text"],
        "history": past,
        "edge_table": facts["edge_table_text"],
        "counts": _counts_text(facts),
        "ids": f"0..{n - 1}",
        "insights": prompt_template("insights").strip(),
        "shape": "",
    }
    if facts.get("pilot") is not None:
        values["shape"] = "Pilot measurements (accuracy in %):\n" + _pilot_text(
            facts["pilot"], combos=False
        )
    return values


def _render_opro(facts: Mapping[str, Any]) -> dict[str, Any]:
    blocks = []
    for index, past in enumerate(facts["history"], start=1):
        blocks.append(f"Graph {index} (score {past['score']:.3f}, {_round_header(past, facts)}):")
        blocks.append(past["text"])
        blocks.append("")
    note = ""
    if facts.get("objective") == "accuracy-latency":
        note = f", minus {facts['latency_weight']:g} x latency / {facts['latency_ref_s']:.2f} s"
    return {
        "task": facts["task"],
        "score_note": note,
        "history": "\n".join(blocks).strip() or "No graph has been evaluated yet.",
        "models": ", ".join(f"{m['name']} ({m['short']})" for m in facts["models"]),
        "model_costs": _costs(facts["models"]),
        "level": facts["level"],
        "max_nodes": facts["max_nodes"],
        "candidates": ", ".join(c["label"] for c in facts["candidates"]),
        "output_model": facts["output_model"],
    }


def _render_hybrid(facts: Mapping[str, Any]) -> dict[str, Any]:
    blocks = []
    for index, sample in enumerate(facts["samples"], start=1):
        blocks.append(f"Sample {index}: reward {sample['accuracy']:.3f}")
        blocks.append(sample["text"])
        blocks.append("")
    return {
        "task": facts["task"],
        "slots": ", ".join(f"{i}: {m}" for i, m in enumerate(facts["slots"])),
        "output_model": facts["output_model"],
        "samples": "\n".join(blocks).strip() or "None.",
        "edge_table": facts["edge_table_text"],
    }


_RENDERERS = {
    "combinations": _render_combinations,
    "next_graph": _render_graph_loop,
    "textgrad_graph": _render_graph_loop,
    "opro_graph": _render_opro,
    "hybrid_table": _render_hybrid,
}
