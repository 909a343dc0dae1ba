"""The leaderboard site: a static, self-contained folder built from result bundles.

``harness leaderboard build`` calls :func:`build_site`; see ``docs/leaderboard.md`` for what the
site shows and how to publish it.

Example:
    >>> from harness.site import build_site, slug
    >>> slug("agent-reinforce")
    'agent-reinforce-70315138'
"""

from __future__ import annotations

from harness.site._build import MARKER, RejectedBundle, SiteReport, build_site, check_out
from harness.site._render import slug

__all__ = ["MARKER", "RejectedBundle", "SiteReport", "build_site", "check_out", "slug"]
