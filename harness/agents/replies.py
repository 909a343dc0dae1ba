r"""Strict parsing of agent replies, and asking again with the error fed back.

Every reply goes through the same steps, whoever wrote it (an LLM or the ``rules`` agent):

1. :func:`extract_json` finds the JSON object in the text, even with prose, ``` fences,
   ``<think>`` blocks or trailing text around it;
2. a parser checks it against the question (model counts, unique node ids, roles, known nodes,
   acyclicity through :meth:`harness.graph.Graph.create`, probabilities in [0, 1], labels among
   the candidates) and raises :class:`ReplyError` with a one-line message;
3. :func:`consult` asks up to ``tries`` times (3), each retry carrying the invalid reply and
   the message ("Your reply was invalid: ...; reply again ..."); after the last it returns
   no value and the method falls back (each method documents its fallback). Invalid replies
   and fallbacks are noted in the study's trace (``agent_note`` records) beside the ledger's
   ``agent_call`` records; nothing here raises into the study.

Example:
    >>> extract_json('Sure! ```json\n{"combinations": ["3x3B"]}\n``` Good luck.')
    {'combinations': ['3x3B']}
    >>> extract_json("no object here")
    Traceback (most recent call last):
    ...
    harness.agents.replies.ReplyError: no JSON object found in the reply
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from harness.agents._base import Agent, AgentError, AgentQuestion
from harness.agents._client import AgentTimeout
from harness.agents.questions import with_feedback
from harness.errors import ConfigError, GraphError
from harness.graph import OUTPUT, ROLES, Graph, Node
from harness.pool import Pool
from harness.space import Combo, Space

__all__ = [
    "Consultation",
    "ReplyError",
    "consult",
    "extract_json",
    "parse_combinations",
    "parse_edge_rows",
    "parse_graph",
]

T = TypeVar("T")
EdgeRows = dict[tuple[int, int | str], float]

_FENCE = re.compile(r"```(?:json|JSON)?\s*(.*?)```", re.DOTALL)
_THINK = re.compile(r"<think>.*?</think>", re.DOTALL)


class ReplyError(ValueError):
    """An invalid agent reply; the message is one line, fed back to the agent on retry."""


def extract_json(text: str) -> dict[str, Any]:
    """The first JSON object in ``text``: in a fenced block if there is one, else anywhere."""
    body = _THINK.sub("", text)
    for chunk in [*_FENCE.findall(body), body]:
        decoder = json.JSONDecoder()
        for start in (m.start() for m in re.finditer(r"\{", chunk)):
            try:
                value, _ = decoder.raw_decode(chunk, start)
            except json.JSONDecodeError:
                continue
            if isinstance(value, dict):
                return value
    raise ReplyError("no JSON object found in the reply")


def _field(reply: Mapping[str, Any], key: str, kind: type) -> Any:
    if key not in reply:
        raise ReplyError(f'the reply has no "{key}" field')
    value = reply[key]
    if not isinstance(value, kind):
        raise ReplyError(f'"{key}" must be a JSON {kind.__name__.replace("dict", "object")}')
    return value


def parse_combinations(
    text: str, space: Space, candidates: Sequence[Combo], choose: int
) -> list[Combo]:
    """``choose`` distinct combinations among ``candidates``, best first.

    Labels are read in the paper's notation, so ``3x1B+2x3B`` matches ``2x3B+3x1B``.

    Example:
        >>> from harness.pool import load_pool
        >>> space = Space(load_pool("llama3"), (202, 275), level=9)
        >>> [c.label for c in parse_combinations(
        ...     '{"combinations": ["3x1B+2x3B", "3x3B"]}', space, space.combos(), 2)]
        ['2x3B+3x1B', '3x3B']
    """
    labels = _field(extract_json(text), "combinations", list)
    known = {c.label: c for c in candidates}
    listing = ", ".join(known)
    chosen: list[Combo] = []
    for label in labels:
        if not isinstance(label, str):
            raise ReplyError(f"combination {label!r} is not a label string (candidates: {listing})")
        try:
            combo = space.parse_combo(label)
        except ConfigError as exc:
            raise ReplyError(f"combination {label!r}: {exc} (candidates: {listing})") from None
        if combo.label not in known:
            raise ReplyError(f"combination {label!r} is not a candidate (candidates: {listing})")
        if combo.label in {c.label for c in chosen}:
            raise ReplyError(f"combination {label!r} is listed twice; give {choose} different")
        chosen.append(known[combo.label])
    if len(chosen) != choose:
        raise ReplyError(f"give exactly {choose} combinations, got {len(chosen)}")
    return chosen


def _node_ref(value: Any, where: str) -> int:
    if isinstance(value, str) and value.strip().lower() == "output":
        return OUTPUT
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    raise ReplyError(f'{where}: {value!r} is not a node id or "output"')


def parse_graph(
    reply: Mapping[str, Any],
    pool: Pool,
    output_model: str,
    counts: Mapping[str, int] | None = None,
    max_nodes: int | None = None,
) -> Graph:
    """The ``graph`` field of a reply as a valid :class:`Graph` with full model names.

    Args:
        reply: the reply's JSON object.
        pool: resolves model names and aliases.
        output_model: the output node's model (fixed; an ``output`` entry in ``nodes`` is
            ignored).
        counts: the model counts the graph must keep (``None``: any), with node ids
            ``0..n-1``.
        max_nodes: most agent nodes allowed.

    Raises:
        ReplyError: the first problem found, in one line.
    """
    graph = _field(reply, "graph", dict)
    raw_nodes = _field(graph, "nodes", list)
    raw_edges = _field(graph, "edges", list)
    nodes: list[Node] = []
    seen: set[int] = set()
    for raw in raw_nodes:
        if not isinstance(raw, dict) or not {"id", "model", "role"} <= set(raw):
            raise ReplyError(f'node {raw!r}: give "id", "model" and "role"')
        if str(raw["id"]).strip().lower() == "output":
            continue  # the output node is fixed; an echo of it is harmless
        node_id = _node_ref(raw["id"], "node")
        if node_id in seen:
            raise ReplyError(f"node {node_id} is listed twice")
        seen.add(node_id)
        if raw["role"] not in ROLES:
            raise ReplyError(f"node {node_id}: role {raw['role']!r} is not assistant or fuser")
        if not isinstance(raw["model"], str) or raw["model"] not in pool:
            known = ", ".join(m.short for m in pool.models)
            raise ReplyError(f"node {node_id}: unknown model {raw['model']!r} (models: {known})")
        nodes.append(Node(node_id, pool.model(raw["model"]).name, raw["role"]))
    if counts is not None:
        _check_counts(nodes, counts, pool)
    if max_nodes is not None and len(nodes) > max_nodes:
        raise ReplyError(f"{len(nodes)} agent nodes, more than the {max_nodes} allowed")
    edges: list[tuple[int, int]] = []
    for raw in raw_edges:
        if not isinstance(raw, list | tuple) or len(raw) != 2:
            raise ReplyError(f"edge {raw!r}: give [SOURCE, TARGET]")
        src, dst = _node_ref(raw[0], "edge source"), _node_ref(raw[1], "edge target")
        for end in (src, dst):
            if end != OUTPUT and end not in seen:
                raise ReplyError(f"edge {raw[0]} -> {raw[1]}: node {end} is not in the nodes list")
        edges.append((src, dst))
    try:
        built = Graph.create(nodes, edges, output_model)
    except GraphError as exc:
        raise ReplyError(str(exc)) from None
    if built.dropped:
        idle = ", ".join(map(str, built.dropped))
        raise ReplyError(f"node(s) {idle} have no path to the output node; connect every node")
    return built


def _check_counts(nodes: Sequence[Node], counts: Mapping[str, int], pool: Pool) -> None:
    want = {pool.model(m).name: n for m, n in counts.items() if n}
    have: dict[str, int] = {}
    for node in nodes:
        have[node.model] = have.get(node.model, 0) + 1

    def text(table: Mapping[str, int]) -> str:
        parts = [f"{n} x {pool.model(m).short}" for m, n in sorted(table.items())]
        return " + ".join(parts) or "none"

    if have != want:
        raise ReplyError(
            f"model counts {text(have)} differ from the combination: keep {text(want)}"
        )
    ids = sorted(node.id for node in nodes)
    if ids != list(range(len(nodes))):
        raise ReplyError(f"node ids must be 0..{len(nodes) - 1} (the edge table's ids), got {ids}")


def parse_edge_rows(reply: Mapping[str, Any], slots: int, key: str = "edge_table") -> EdgeRows:
    """The changed rows of an edge table, ``{(source, target): p}``; target may be ``"output"``.

    Rows are ``[source, target, p]`` lists (or ``{"source", "target", "p"}`` objects); every
    edge must be a candidate of a table over ``slots`` agent slots, ``p`` in [0, 1].

    Example:
        >>> parse_edge_rows({"edge_table": [[0, "output", 0.9], [1, 0, 0.2]]}, 2)
        {(0, 'output'): 0.9, (1, 0): 0.2}
    """
    rows = _field(reply, key, list)
    out: EdgeRows = {}
    for raw in rows:
        if isinstance(raw, dict):
            raw = [raw.get("source"), raw.get("target"), raw.get("p", raw.get("probability"))]
        if not isinstance(raw, list | tuple) or len(raw) != 3:
            raise ReplyError(f"edge table row {raw!r}: give [SOURCE, TARGET, PROBABILITY]")
        src, dst = _node_ref(raw[0], "edge table source"), _node_ref(raw[1], "edge table target")
        p = raw[2]
        if isinstance(p, bool) or not isinstance(p, int | float) or not math.isfinite(p):
            raise ReplyError(f"edge table row {raw!r}: the probability must be a number")
        if not 0.0 <= float(p) <= 1.0:
            raise ReplyError(f"edge table row {raw!r}: probability {p} is not in [0, 1]")
        if src in (OUTPUT, dst) or src >= slots or (dst != OUTPUT and dst >= slots):
            raise ReplyError(
                f"edge table row {raw!r}: not a candidate edge of nodes 0..{slots - 1}"
            )
        target: int | str = "output" if dst == OUTPUT else dst
        if (src, target) in out:
            raise ReplyError(f"edge table row {raw!r}: the edge is listed twice")
        out[(src, target)] = float(p)
    return out


@dataclass
class Consultation(Generic[T]):
    """What :func:`consult` got: the parsed value (None after the last invalid try)."""

    value: T | None
    tries: int
    errors: list[str] = field(default_factory=list)
    reply: str | None = None


def _note(agent: Agent, record: dict[str, Any]) -> None:
    note = getattr(agent, "note", None)  # a LedgeredAgent records into the trace
    if callable(note):
        note(record)


def consult(
    agent: Agent,
    question: AgentQuestion,
    parse: Callable[[str], T],
    tries: int = 3,
    fallback: str = "",
) -> Consultation[T]:
    """Ask ``agent`` until ``parse`` accepts the reply, at most ``tries`` times.

    Each retry repeats the question with the invalid reply and the parser's message. Client
    failures (:class:`AgentError`, after the client's own retries) count as tries; a timeout
    ends the consultation at once (a repeat would be as slow). Nothing is raised: after the
    last try the value is None, and ``fallback`` (what the method does instead) is noted in
    the trace.
    """
    errors: list[str] = []
    current = question
    text: str | None = None
    used = 0
    for attempt in range(1, tries + 1):
        used = attempt
        try:
            text = agent.ask(current).text
        except AgentTimeout as exc:
            errors.append(f"agent call timed out: {exc}")
            break  # the next try would be as slow (its prompt only longer)
        except AgentError as exc:
            errors.append(f"agent call failed: {exc}")
            continue
        try:
            value = parse(text)
        except ReplyError as exc:
            errors.append(str(exc))
            _note(agent, {"kind": question.kind, "event": "invalid_reply", "try": attempt,
                          "error": str(exc)})  # fmt: skip
            current = with_feedback(current, text, str(exc))
            continue
        return Consultation(value, attempt, errors, text)
    _note(agent, {"kind": question.kind, "event": "fallback", "tries": used,
                  "error": errors[-1] if errors else None, "fallback": fallback})  # fmt: skip
    return Consultation(None, used, errors, text)
