"""Real LLMs: providers, limits and clients (the live and replay backends)."""

from __future__ import annotations
