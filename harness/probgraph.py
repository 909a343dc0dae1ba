"""The probabilistic graph (PAPER.md section 4): logits over edges, roles and models.

A :class:`ProbGraph` covers a fixed list of agent node slots (one per model of a combination)
and the output node. It holds one Bernoulli logit per candidate edge (every ordered pair of
agent slots, then every slot -> output), one role logit per slot (the log-odds of *fuser*
against *assistant*) and, optionally, per-slot logits over the pool's models. REINFORCE, the
hybrid and Agent-REINFORCE share it: :meth:`ProbGraph.sample` draws a valid graph,
:meth:`ProbGraph.log_prob_grad` gives the analytic gradient of its log-probability, and the
edge-probability table (:meth:`ProbGraph.edge_table_text`) is what an LLM agent reads and
rewrites (:meth:`ProbGraph.with_edge_probs` sets it back).

How a sample stays valid, and why its log-probability is exact:

- **Acyclic.** Agent-pair candidates are visited in a fresh uniformly random order (drawn from
  the caller's generator, independent of the logits); a candidate that would close a cycle is
  skipped without a draw, the others are Bernoulli draws. This is GPTSwarm's rule (it skips
  cycle-closing edges), with a random instead of a fixed visiting order so that no edge
  direction is favoured. Given the order, ``log p`` is the sum over drawn candidates only,
  and since the order does not depend on the logits the REINFORCE estimator stays unbiased.
- **The output node gets an input.** The slot -> output edges never close a cycle; they are
  drawn from their Bernoullis *conditioned on at least one being on*, exactly (sequentially,
  no rejection loop), so ``log p`` includes ``-log P(at least one)`` and its gradient.
- **Roles.** In topological order, a slot with an assistant parent and no fuser parent draws
  fuser with ``sigmoid(role logit)``; any other slot is forced to be an assistant (no draw, no
  gradient). Slots that cannot reach the output node are dropped by :meth:`Graph.create`; they
  never change a kept node's parents, so the roles stay valid.
- **Models** (optional) are drawn per slot from a softmax over ``model_choices``.

Budget repair is the caller's job (``space.repair``): the gradient is that of the sample as
drawn, before repair.

Example:
    >>> import random
    >>> pg = ProbGraph.create(["1B", "1B", "3B"], "3B", edge_prob=0.3)
    >>> sample = pg.sample(random.Random(0))
    >>> sample.graph.in_degree(-1) >= 1
    True
    >>> grad = pg.log_prob_grad(sample)
    >>> grad.edge.shape == pg.edge_logits.shape
    True
    >>> print(pg.edge_table_text().splitlines()[1])
    0 -> 1 | 0.300
    >>> pg.with_edge_probs("0 -> output | 0.9").threshold_graph().edges
    ((0, -1),)
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt
from scipy.special import expit, log_expit, log_softmax, softmax

from harness.errors import GraphError
from harness.graph import ASSISTANT, FUSER, OUTPUT, Graph, Node

__all__ = ["Adam", "GraphSample", "LogitGrad", "ProbGraph"]

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
PROB_CLIP = 1e-4
"""Table probabilities are clipped to [PROB_CLIP, 1 - PROB_CLIP]: an agent's 0 or 1 stays finite."""


def _logit(p: float) -> float:
    p = min(max(p, PROB_CLIP), 1.0 - PROB_CLIP)
    return math.log(p / (1.0 - p))


def _frozen(array: npt.ArrayLike) -> FloatArray:
    out = np.array(array, dtype=np.float64)
    out.flags.writeable = False
    return out


@dataclass(frozen=True, eq=False)
class LogitGrad:
    """A gradient (or any vector) over a :class:`ProbGraph`'s logits, split by kind."""

    edge: FloatArray
    role: FloatArray
    model: FloatArray | None = None

    def flat(self) -> FloatArray:
        """All entries in :meth:`ProbGraph.flat` order."""
        parts = [self.edge, self.role] + ([self.model.ravel()] if self.model is not None else [])
        return np.concatenate(parts)

    def __add__(self, other: LogitGrad) -> LogitGrad:
        model = None if self.model is None or other.model is None else self.model + other.model
        return LogitGrad(self.edge + other.edge, self.role + other.role, model)

    def __mul__(self, factor: float) -> LogitGrad:
        model = None if self.model is None else self.model * factor
        return LogitGrad(self.edge * factor, self.role * factor, model)

    __rmul__ = __mul__


@dataclass(frozen=True, eq=False)
class GraphSample:
    """One draw of a :class:`ProbGraph`: the graph and the decisions its gradient needs.

    Attributes:
        graph: the valid graph (slots that cannot reach the output node dropped).
        edges: per candidate edge, whether it is on.
        drawn: per candidate edge, whether it was a Bernoulli draw (False: skipped because it
            would have closed a cycle).
        fusers: per slot, whether it is a fuser.
        role_drawn: per slot, whether its role was a draw (False: forced to assistant).
        models: per slot, the index of its model in ``model_choices`` (None: models fixed).
    """

    graph: Graph
    edges: BoolArray
    drawn: BoolArray
    fusers: BoolArray
    role_drawn: BoolArray
    models: npt.NDArray[np.int64] | None = None


@dataclass(frozen=True, eq=False)
class ProbGraph:
    """Logits over the edges, roles and (optionally) models of ``len(models)`` slots.

    Build one with :meth:`create`. Candidate edges are :attr:`candidates`: every ordered pair
    ``(i, j)`` of slots with ``i != j`` (row-major), then ``(i, OUTPUT)`` for every slot.
    Instances are immutable; the ``with_*`` methods return new ones.
    """

    models: tuple[str, ...]
    output_model: str
    edge_logits: FloatArray
    role_logits: FloatArray
    model_choices: tuple[str, ...] = ()
    model_logits: FloatArray | None = None

    @classmethod
    def create(
        cls,
        models: Sequence[str],
        output_model: str,
        model_choices: Sequence[str] = (),
        edge_prob: float = 0.5,
        fuser_prob: float = 0.5,
        model_prob: float = 0.9,
    ) -> ProbGraph:
        """A probabilistic graph with uniform initial probabilities.

        Args:
            models: one model per agent slot (a model combination).
            output_model: the output node's model (fixed).
            model_choices: the models a slot may take; empty keeps ``models`` fixed.
            edge_prob: initial probability of every candidate edge.
            fuser_prob: initial probability that a slot which may fuse is a fuser.
            model_prob: initial probability of a slot's own model (the rest share the remainder
                equally); used only with ``model_choices``.

        Raises:
            GraphError: no slots, or a slot's model missing from ``model_choices``.
        """
        if not models:
            raise GraphError("a probabilistic graph needs at least one agent slot")
        n = len(models)
        edge = np.full(n * (n - 1) + n, _logit(edge_prob))
        role = np.full(n, _logit(fuser_prob))
        model_logits = None
        if model_choices:
            missing = sorted(set(models) - set(model_choices))
            if missing:
                raise GraphError(f"slot models {missing} are not among the model choices")
            k = len(model_choices)
            other = (1.0 - model_prob) / (k - 1) if k > 1 else 1.0
            table = np.full((n, k), math.log(max(other, PROB_CLIP)))
            for slot, model in enumerate(models):
                table[slot, model_choices.index(model)] = math.log(max(model_prob, PROB_CLIP))
            model_logits = _frozen(table)
        return cls(
            tuple(models), output_model, _frozen(edge), _frozen(role), tuple(model_choices),
            model_logits,
        )  # fmt: skip

    # ----- shape ---------------------------------------------------------------------------

    @property
    def n(self) -> int:
        """Number of agent slots."""
        return len(self.models)

    @property
    def candidates(self) -> list[tuple[int, int]]:
        """Candidate edges in logit order: ordered slot pairs, then slot -> output."""
        pairs = [(i, j) for i in range(self.n) for j in range(self.n) if i != j]
        return pairs + [(i, OUTPUT) for i in range(self.n)]

    def edge_probs(self) -> FloatArray:
        """Probability of every candidate edge (before the acyclicity and output rules)."""
        return np.asarray(expit(self.edge_logits), dtype=np.float64)

    def fuser_probs(self) -> FloatArray:
        """Per slot, the probability of fuser where the constraints allow it."""
        return np.asarray(expit(self.role_logits), dtype=np.float64)

    def flat(self) -> FloatArray:
        """Every logit in one vector: edges, roles, then models row by row."""
        return LogitGrad(self.edge_logits, self.role_logits, self.model_logits).flat()

    def with_flat(self, vector: npt.ArrayLike) -> ProbGraph:
        """A copy with logits from a vector in :meth:`flat` order."""
        vec = np.asarray(vector, dtype=np.float64)
        e, r = len(self.edge_logits), self.n
        model = None
        if self.model_logits is not None:
            model = _frozen(vec[e + r :].reshape(self.model_logits.shape))
        return replace(self, edge_logits=_frozen(vec[:e]), role_logits=_frozen(vec[e : e + r]),
                       model_logits=model)  # fmt: skip

    # ----- sampling ------------------------------------------------------------------------

    def sample(self, rng: random.Random) -> GraphSample:
        """Draw a valid graph (see the module docstring for the rules)."""
        n, probs = self.n, self.edge_probs()
        n_pairs = n * (n - 1)
        edges = np.zeros(len(probs), dtype=bool)
        drawn = np.zeros(len(probs), dtype=bool)
        reach = [0] * n  # bitmask of each slot's descendants
        pairs = self.candidates[:n_pairs]
        order = list(range(n_pairs))
        rng.shuffle(order)
        for index in order:
            src, dst = pairs[index]
            if (reach[dst] >> src) & 1:
                continue  # dst already reaches src: src -> dst would close a cycle
            drawn[index] = True
            if rng.random() < probs[index]:
                edges[index] = True
                gained = (1 << dst) | reach[dst]
                for node in range(n):
                    if node == src or (reach[node] >> src) & 1:
                        reach[node] |= gained
        out = probs[n_pairs:]
        drawn[n_pairs:] = True
        # Exact draw from the Bernoullis conditioned on at least one slot -> output edge:
        # while none is on yet, slot i is on with q_i / P(some edge among slots i..n-1).
        log_off = np.asarray(log_expit(-self.edge_logits[n_pairs:]), dtype=np.float64)
        any_yet = False
        for i in range(n):
            p = out[i] if any_yet else out[i] / -math.expm1(float(log_off[i:].sum()))
            if rng.random() < p:
                edges[n_pairs + i] = any_yet = True
        models = None
        names = list(self.models)
        if self.model_logits is not None:
            models = np.zeros(n, dtype=np.int64)
            for slot, row in enumerate(softmax(self.model_logits, axis=1)):
                models[slot] = _categorical(rng, row)
                names[slot] = self.model_choices[models[slot]]
        on = [pairs[i] for i in range(n_pairs) if edges[i]]
        fuse_p = self.fuser_probs()
        fusers, role_drawn = self._roles(on, lambda slot: rng.random() < fuse_p[slot])
        nodes = [Node(i, names[i], FUSER if fusers[i] else ASSISTANT) for i in range(n)]
        on += [(i, OUTPUT) for i in range(n) if edges[n_pairs + i]]
        graph = Graph.create(nodes, on, self.output_model)
        return GraphSample(graph, edges, drawn, fusers, role_drawn, models)

    def _roles(
        self, agent_edges: Sequence[tuple[int, int]], choose: Callable[[int], bool]
    ) -> tuple[BoolArray, BoolArray]:
        """Roles in topological order: ``choose(slot)`` decides where a fuser is allowed."""
        parents: dict[int, list[int]] = {i: [] for i in range(self.n)}
        for src, dst in agent_edges:
            parents[dst].append(src)
        fusers = np.zeros(self.n, dtype=bool)
        role_drawn = np.zeros(self.n, dtype=bool)
        for slot in _topological(self.n, parents):
            parent_fuse = [bool(fusers[p]) for p in parents[slot]]
            if parent_fuse and not any(parent_fuse):  # an assistant parent, no fuser parent
                role_drawn[slot] = True
                fusers[slot] = choose(slot)
        return fusers, role_drawn

    # ----- log-probability -----------------------------------------------------------------

    def log_prob(self, sample: GraphSample) -> float:
        """``log p(sample)`` under these logits (the decisions of ``sample`` held fixed)."""
        n_pairs = self.n * (self.n - 1)
        on = sample.edges.astype(np.float64)
        ll_on = np.asarray(log_expit(self.edge_logits), dtype=np.float64)
        ll_off = np.asarray(log_expit(-self.edge_logits), dtype=np.float64)
        edge_terms = np.where(sample.drawn, on * ll_on + (1 - on) * ll_off, 0.0)
        total = float(edge_terms.sum())
        total -= math.log(-math.expm1(float(ll_off[n_pairs:].sum())))  # conditioning on >= 1
        fuse = sample.fusers.astype(np.float64)
        role_terms = fuse * log_expit(self.role_logits) + (1 - fuse) * log_expit(-self.role_logits)
        total += float(np.where(sample.role_drawn, role_terms, 0.0).sum())
        if self.model_logits is not None and sample.models is not None:
            lsm = log_softmax(self.model_logits, axis=1)
            total += float(lsm[np.arange(self.n), sample.models].sum())
        return total

    def log_prob_grad(self, sample: GraphSample) -> LogitGrad:
        """The analytic gradient of :meth:`log_prob` with respect to every logit."""
        n_pairs = self.n * (self.n - 1)
        probs = self.edge_probs()
        edge = np.where(sample.drawn, sample.edges - probs, 0.0)
        q = probs[n_pairs:]
        log_none = float(np.asarray(log_expit(-self.edge_logits[n_pairs:])).sum())
        # d log Z / d l_i = q_i * P(no edge) / P(some edge), with Z = 1 - prod(1 - q_j).
        edge[n_pairs:] -= q * math.exp(log_none) / -math.expm1(log_none)
        role = np.where(sample.role_drawn, sample.fusers - self.fuser_probs(), 0.0)
        model = None
        if self.model_logits is not None and sample.models is not None:
            model = -softmax(self.model_logits, axis=1)
            model[np.arange(self.n), sample.models] += 1.0
        return LogitGrad(edge, role, model)

    # ----- the edge-probability table ------------------------------------------------------

    def edge_table(self) -> dict[tuple[int, int], float]:
        """Probability of every candidate edge, keyed ``(source, target)``."""
        return {edge: float(p) for edge, p in zip(self.candidates, self.edge_probs(), strict=True)}

    def edge_table_text(self) -> str:
        """The table as text, one ``source -> target | probability`` row per candidate edge."""
        rows = ["# source -> target | probability"]
        for (src, dst), p in self.edge_table().items():
            rows.append(f"{src} -> {'output' if dst == OUTPUT else dst} | {p:.3f}")
        return "\n".join(rows)

    def with_edge_probs(self, table: Mapping[tuple[int, int | str], float] | str) -> ProbGraph:
        """A copy with the given edge probabilities; edges not mentioned keep theirs.

        Args:
            table: ``{(source, target): p}`` (target may be ``"output"``) or the text form.

        Raises:
            GraphError: an unknown edge, a malformed row or a probability outside [0, 1].
        """
        rows = _parse_table(table) if isinstance(table, str) else table
        index = {edge: pos for pos, edge in enumerate(self.candidates)}
        logits = np.array(self.edge_logits)
        for (src, raw_dst), p in rows.items():
            dst = OUTPUT if raw_dst in ("output", OUTPUT) else raw_dst
            key = (src, dst) if isinstance(dst, int) else None
            if key not in index:
                raise GraphError(f"edge table: {src} -> {raw_dst} is not a candidate edge")
            if not 0.0 <= float(p) <= 1.0:
                raise GraphError(f"edge table: {src} -> {raw_dst}: probability {p} not in [0, 1]")
            logits[index[key]] = _logit(float(p))
        return replace(self, edge_logits=_frozen(logits))

    def threshold_graph(self, threshold: float = 0.55) -> Graph:
        """The graph of the edges with probability above ``threshold`` (the paper's 0.55).

        Edges are added most probable first, skipping any that would close a cycle; if no
        slot -> output edge passes, the most probable one is kept. Models are each slot's most
        probable; a slot is a fuser where allowed and its fuser probability exceeds 0.5.
        """
        probs, n_pairs = self.edge_probs(), self.n * (self.n - 1)
        pairs = self.candidates[:n_pairs]
        reach = [0] * self.n
        on: list[tuple[int, int]] = []
        for index in sorted(range(n_pairs), key=lambda i: (-probs[i], i)):
            src, dst = pairs[index]
            if probs[index] <= threshold or (reach[dst] >> src) & 1:
                continue
            on.append((src, dst))
            for node in range(self.n):
                if node == src or (reach[node] >> src) & 1:
                    reach[node] |= (1 << dst) | reach[dst]
        fuse_p = self.fuser_probs()
        fusers, _ = self._roles(on, lambda slot: bool(fuse_p[slot] > 0.5))
        out = [(i, OUTPUT) for i in range(self.n) if probs[n_pairs + i] > threshold]
        if not out:
            out = [(int(np.argmax(probs[n_pairs:])), OUTPUT)]
        names = list(self.models)
        if self.model_logits is not None:
            names = [self.model_choices[int(k)] for k in np.argmax(self.model_logits, axis=1)]
        nodes = [Node(i, names[i], FUSER if fusers[i] else ASSISTANT) for i in range(self.n)]
        return Graph.create(nodes, on + out, self.output_model)


def _categorical(rng: random.Random, probs: FloatArray) -> int:
    draw, total = rng.random(), 0.0
    for index, p in enumerate(probs):
        total += float(p)
        if draw < total:
            return index
    return len(probs) - 1  # rounding left the cumulative sum just under 1


def _topological(n: int, parents: Mapping[int, Sequence[int]]) -> list[int]:
    done: set[int] = set()
    order: list[int] = []
    while len(order) < n:
        ready = next(i for i in range(n) if i not in done and all(p in done for p in parents[i]))
        done.add(ready)
        order.append(ready)
    return order


def _parse_table(text: str) -> dict[tuple[int, int | str], float]:
    rows: dict[tuple[int, int | str], float] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        edge, sep, value = line.partition("|")
        src, arrow, dst = edge.partition("->")
        src, dst = src.strip(), dst.strip()
        try:
            if not (sep and arrow and src.isdigit() and (dst.isdigit() or dst == "output")):
                raise ValueError
            p = float(value)
        except ValueError:
            raise GraphError(
                f"edge table, line {number}: expected 'SOURCE -> TARGET | PROBABILITY', "
                f"got {line!r}"
            ) from None
        key: tuple[int, int | str] = (int(src), int(dst) if dst.isdigit() else "output")
        if key in rows:
            raise GraphError(f"edge table, line {number}: edge {src} -> {dst} listed twice")
        rows[key] = p
    return rows


class Adam:
    """Adam on a :class:`ProbGraph`'s logits (Kingma and Ba; the defaults of ``torch.optim``).

    Example:
        >>> pg = ProbGraph.create(["1B"], "3B")
        >>> loss_grad = LogitGrad(-np.ones(1), np.zeros(1))  # descending raises the edge logit
        >>> round(float(Adam(lr=0.1).step(pg, loss_grad).edge_logits[0]), 3)
        0.1
    """

    def __init__(
        self, lr: float = 0.1, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8
    ) -> None:
        self.lr, self.betas, self.eps = lr, betas, eps
        self.steps = 0
        self._m: FloatArray | None = None
        self._v: FloatArray | None = None

    def step(self, graph: ProbGraph, loss_grad: LogitGrad) -> ProbGraph:
        """One descent step on the loss whose gradient is ``loss_grad``."""
        g = loss_grad.flat()
        if self._m is None or self._v is None or self._m.shape != g.shape:
            self._m, self._v = np.zeros_like(g), np.zeros_like(g)
        b1, b2 = self.betas
        self.steps += 1
        self._m = b1 * self._m + (1 - b1) * g
        self._v = b2 * self._v + (1 - b2) * g * g
        m_hat = self._m / (1 - b1**self.steps)
        v_hat = self._v / (1 - b2**self.steps)
        return graph.with_flat(graph.flat() - self.lr * m_hat / (np.sqrt(v_hat) + self.eps))
