"""The ``sim`` backend: an embedded, calibrated simulator of a model pool (docs/sim.md).

It answers every node's call on a whole batch at once, as symbols (``0`` right, ``k >= 1`` the
question's ``k``-th wrong answer, ``-1`` no answer), from an item-response model calibrated to
PAPER.md section 6, with counter-based random numbers so that answers depend only on the seed,
the epoch, the graph, the node and the question.

Example:
    >>> from harness.pool import load_pool
    >>> from harness.tasks import load_task
    >>> backend = SimBackend()
    >>> backend.bind(load_task("math"), load_pool("llama3"))
    >>> backend.name, backend.produces
    ('sim', 'symbols')
"""

from __future__ import annotations

from harness.sim._backend import SimBackend
from harness.sim._params import SimParams, load_sim_params

__all__ = ["SimBackend", "SimParams", "load_sim_params"]
