"""The JSON schema of each question kind's reply (LLMs read it in the prompt: JSON mode only).

Example:
    >>> sorted(SCHEMAS["next_graph"]["required"])
    ['edge_table', 'graph']
"""

from __future__ import annotations

from typing import Any

__all__ = ["SCHEMAS"]

_REF = {"oneOf": [{"type": "integer", "minimum": 0}, {"const": "output"}]}
_ROWS = {
    "type": "array",
    "items": {
        "type": "array",
        "prefixItems": [{"type": "integer"}, _REF, {"type": "number", "minimum": 0, "maximum": 1}],
    },
}
_GRAPH = {
    "type": "object",
    "required": ["nodes", "edges"],
    "properties": {
        "nodes": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["id", "model", "role"],
                "properties": {
                    "id": {"type": "integer", "minimum": 0},
                    "model": {"type": "string"},
                    "role": {"enum": ["assistant", "fuser"]},
                },
            },
        },
        "edges": {"type": "array", "items": {"type": "array", "prefixItems": [_REF, _REF]}},
    },
}
SCHEMAS: dict[str, dict[str, Any]] = {
    "combinations": {
        "type": "object",
        "required": ["combinations"],
        "properties": {
            "combinations": {"type": "array", "items": {"type": "string"}},
            "reason": {"type": "string"},
        },
    },
    "next_graph": {
        "type": "object",
        "required": ["graph", "edge_table"],
        "properties": {"graph": _GRAPH, "edge_table": _ROWS, "reason": {"type": "string"}},
    },
    "textgrad_graph": {
        "type": "object",
        "required": ["feedback", "graph", "edge_table"],
        "properties": {"feedback": {"type": "string"}, "graph": _GRAPH, "edge_table": _ROWS},
    },
    "opro_graph": {
        "type": "object",
        "required": ["graph"],
        "properties": {"graph": _GRAPH, "reason": {"type": "string"}},
    },
    "hybrid_table": {
        "type": "object",
        "required": ["edge_table"],
        "properties": {"edge_table": _ROWS, "reason": {"type": "string"}},
    },
}
"""The JSON schema of each kind's reply (LLMs read it in the prompt: JSON mode, no schema mode)."""
