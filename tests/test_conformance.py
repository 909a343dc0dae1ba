"""Every registered built-in method passes the method conformance suite (harness.testing)."""

from __future__ import annotations

from typing import Any

import pytest

from harness.methods import method_names
from harness.testing import MethodConformance

NEEDS_AGENT: frozenset[str] = frozenset({"agent-reinforce", "textgrad", "opro", "hybrid"})
"""Methods that consult an agent: tests/test_agent_methods.py runs the suite on them."""

SPECS: list[tuple[str, dict[str, Any]]] = [
    (name, {}) for name in method_names() if name not in NEEDS_AGENT
]
# The paper's Bayesian-optimisation variant is an option, not a name: check it too.
SPECS.append(("optuna-tpe", {"fixed_combo": True}))


def _id(spec: tuple[str, dict[str, Any]]) -> str:
    name, options = spec
    return name + "".join(f"[{k}={v}]" for k, v in sorted(options.items()))


class TestBuiltinMethods(MethodConformance):
    @pytest.fixture(params=SPECS, ids=_id)
    def method_spec(self, request: pytest.FixtureRequest) -> tuple[str, dict[str, Any]]:
        return request.param


def test_every_builtin_method_is_covered():
    assert {
        "random",
        "parallel",
        "chain",
        "reinforce",
        "reinforce-baseline",
        "optuna-tpe",
        "optuna-gp",
        "evolution",
    } <= {name for name, _ in SPECS}
