"""Fixed topologies: the parallel (width) and chain (depth) references (PAPER.md section 8).

They do not search: every iteration evaluates the same graph, so their curve shows what a
hand-picked test-time-scaling layout scores under the same budget as the search methods.

- ``parallel``: ``width`` assistants of ``model`` feeding the output node (parallel sampling
  with an aggregating output node). Default width: the widest graph that fits the FLOPs cap.
- ``chain``: ``depth`` assistants of ``model`` in a chain into the output node (sequential
  refinement). Default depth: the longest chain that fits the cap.

Settings: ``model`` (default ``3B``), ``width`` / ``depth``, ``output_model`` (default: the
pool's), ``questions`` per evaluation.
"""

from __future__ import annotations

from harness.errors import BudgetError, ConfigError
from harness.graph import OUTPUT, Graph
from harness.methods import Method, Outcome, SearchEnv, Trial


class _Fixed(Method):
    size_option = "width"

    def __init__(
        self,
        model: str = "3B",
        size: int | None = None,
        output_model: str | None = None,
        questions: int | None = None,
    ) -> None:
        super().__init__(
            model=model, **{self.size_option: size}, output_model=output_model, questions=questions
        )
        self.model = model
        self.size = size
        self.output_model = output_model
        self.questions = questions
        self.graph: Graph | None = None

    def build(self, size: int, model: str, output_model: str) -> Graph:
        raise NotImplementedError

    def setup(self, env: SearchEnv) -> None:
        """Build the graph once: the given size, or the largest that fits the cap."""
        super().setup(env)
        pool = env.space.pool
        model = pool.model(self.model).name
        output = pool.model(self.output_model or pool.output_model).name
        if self.size is not None:
            if self.size < 1:
                raise ConfigError(f"method {self.name!r}: {self.size_option} must be at least 1")
            self.graph = self.build(self.size, model, output)
            return
        fitting = [
            g
            for g in (self.build(n, model, output) for n in range(1, env.space.max_nodes + 1))
            if env.space.fits(g)
        ]
        if not fitting:
            raise BudgetError(f"method {self.name!r}: even one {model} node exceeds the cap")
        self.graph = fitting[-1]

    def ask(self) -> Trial:
        """The same graph every time."""
        assert self.graph is not None, "setup() builds the graph"
        return Trial(self.graph, self.questions)

    def tell(self, outcome: Outcome) -> None:
        """Nothing to learn."""

    def recommend(self) -> Graph:
        """The fixed graph."""
        assert self.graph is not None, "setup() builds the graph"
        return self.graph


class Parallel(_Fixed):
    """``width`` parallel assistants into the output node.

    Example:
        >>> Parallel().build(3, "3B", "3B").width
        3
    """

    name = "parallel"
    description = "fixed: parallel assistants into the output node (widest that fits)"
    version = "1"
    size_option = "width"

    def __init__(
        self,
        model: str = "3B",
        width: int | None = None,
        output_model: str | None = None,
        questions: int | None = None,
    ) -> None:
        super().__init__(model, width, output_model, questions)

    def build(self, size: int, model: str, output_model: str) -> Graph:
        """The parallel graph of ``size`` assistants."""
        nodes = [(i, model, "assistant") for i in range(size)]
        return Graph.create(nodes, [(i, OUTPUT) for i in range(size)], output_model)


class Chain(_Fixed):
    """A chain of ``depth`` assistants into the output node.

    Example:
        >>> Chain().build(4, "1B", "3B").depth
        4
    """

    name = "chain"
    description = "fixed: a chain of assistants into the output node (longest that fits)"
    version = "1"
    size_option = "depth"

    def __init__(
        self,
        model: str = "3B",
        depth: int | None = None,
        output_model: str | None = None,
        questions: int | None = None,
    ) -> None:
        super().__init__(model, depth, output_model, questions)

    def build(self, size: int, model: str, output_model: str) -> Graph:
        """The chain of ``size`` assistants."""
        nodes = [(i, model, "assistant") for i in range(size)]
        edges = [(i, i + 1) for i in range(size - 1)] + [(size - 1, OUTPUT)]
        return Graph.create(nodes, edges, output_model)
