"""Templates, formatting filters and safe file names for the leaderboard site.

Every template is rendered with autoescaping on (whatever its file name), so text from a bundle
(its name, description, options, reasons) reaches a page only as escaped text. File names made
from bundle text are slugs: lowercase ``[a-z0-9-]`` plus a short hash of the whole text, so two
names never share a file and no name can climb out of its folder.

Example:
    >>> slug("<script>alert(1)</script>")
    'script-alert-1-script-5c140d35'
    >>> fmt_pct(0.5123), fmt_num(None)
    ('51.2', '-')
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from typing import Any

import jinja2
import markupsafe

from harness.paths import site_dir

__all__ = ["agent_label", "environment", "fmt_num", "fmt_pct", "slug", "sort_key"]

_SLUG_BODY = 40


def slug(text: str) -> str:
    """A file-name-safe, collision-free name for ``text`` (see the module docstring)."""
    body = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:_SLUG_BODY].strip("-")
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()[:8]
    return f"{body or 'x'}-{digest}"


def _finite(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def fmt_num(value: Any, digits: int = 2) -> str:
    """A number with ``digits`` decimals; ``-`` for None or anything not a finite number."""
    number = _finite(value)
    return "-" if number is None else f"{number:.{digits}f}"


def fmt_pct(value: Any, digits: int = 1) -> str:
    """A fraction as a percentage without the sign (``0.512`` -> ``51.2``)."""
    number = _finite(value)
    return "-" if number is None else f"{number * 100:.{digits}f}"


def fmt_money(value: Any) -> str:
    """Dollars, with enough decimals for the fractions of a cent an agent costs."""
    number = _finite(value)
    return "-" if number is None else f"${number:.4f}"


def sort_key(value: Any) -> str:
    """The ``data-sort`` attribute of a numeric cell: a plain number, empty when missing."""
    number = _finite(value)
    return "" if number is None else repr(round(number, 12))


def fmt_json(value: Any) -> str:
    """A value as compact JSON text (for option values in a table; escaped by the template)."""
    return json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)


def agent_label(agent: Any) -> str:
    """What a row shows for its agent: ``rules (offline)``, ``openai:gpt-4o-mini (LLM)``, ``-``.

    Example:
        >>> agent_label({"spec": "openai:gpt-4o-mini", "is_llm": True}), agent_label(None)
        ('openai:gpt-4o-mini (LLM)', '-')
    """
    if not isinstance(agent, dict) or not agent.get("spec"):
        return "-"
    return f"{agent['spec']} ({'LLM' if agent.get('is_llm') else 'offline'})"


def fmt_literals(text: str) -> markupsafe.Markup:
    """Docstring text with reST literals (````name````) as ``<code>``; everything else escaped.

    Example:
        >>> str(fmt_literals("``width`` <b>assistants</b>"))
        '<code>width</code> &lt;b&gt;assistants&lt;/b&gt;'
    """
    parts = str(text).split("``")
    if len(parts) % 2 == 0:  # an unpaired ``: show the text as it is, escaped
        return markupsafe.escape(text)
    out = [
        markupsafe.Markup("<code>{}</code>").format(part) if i % 2 else markupsafe.escape(part)
        for i, part in enumerate(parts)
    ]
    return markupsafe.Markup("").join(out)


def environment() -> jinja2.Environment:
    """The site's Jinja2 environment: templates from ``site_dir()``, autoescape on for all."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(site_dir() / "templates")),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        num=fmt_num,
        pct=fmt_pct,
        money=fmt_money,
        sortkey=sort_key,
        tojson_text=fmt_json,
        literals=fmt_literals,
    )
    # Jinja's own |tojson marks its output safe for HTML; the site never embeds JSON in a page.
    env.filters.pop("tojson", None)
    return env
