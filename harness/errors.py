"""The harness's exceptions: one root, specific subclasses.

Every error a user can cause by what they type or write (a file, a flag, a value) is a
:class:`UserError`. The CLI prints it as one line and exits with status 2, without a traceback.
Anything else is a bug in the harness and keeps its traceback.

Example:
    >>> from harness.errors import GraphError, UserError
    >>> issubclass(GraphError, UserError)
    True
    >>> str(GraphError("node 3: a fuser needs at least one assistant parent"))
    'node 3: a fuser needs at least one assistant parent'
"""

from __future__ import annotations

__all__ = [
    "BudgetError",
    "CallError",
    "ConfigError",
    "DataError",
    "DataUnavailable",
    "GraphError",
    "HarnessError",
    "ReplayMiss",
    "UserError",
]


class HarnessError(Exception):
    """Root of every exception the harness raises on purpose."""


class UserError(HarnessError):
    """Bad input from the user: printed as one line, exit status 2."""


class ConfigError(UserError):
    """A malformed or inconsistent YAML file (task, pool, protocol) or command-line value."""


class DataError(UserError):
    """A dataset that cannot be found, loaded or parsed."""


class DataUnavailable(DataError):
    """A data source that does not have the data (a file absent, the Hub unreachable).

    Loading falls through to the next source on this error only; data that is present but
    broken (bad JSON, a checksum mismatch) stops the load, since serving other data silently
    would hide the fault.
    """


class GraphError(UserError):
    """A collaboration graph that breaks a constraint; the message names the node or edge."""


class BudgetError(UserError):
    """A graph or request that does not fit the budget and cannot be repaired."""


class ReplayMiss(DataError):
    """A ``replay`` study needs a call that the call cache does not hold (the call is named)."""


class CallError(HarnessError):
    """An LLM call that failed after its last retry (or with an error no retry fixes).

    Not a user error: the study records the graph evaluation as failed (not charged) and goes
    on, as it does for any backend failure.
    """
