"""Sweeps: a grid of studies from a YAML config, resumable, on local processes or Ray.

A sweep config is data (``leaderboard/sweeps/*.yaml``): methods x tasks x backends x seeds
under one protocol. :func:`load_sweep` validates it, :func:`plan` lays out one folder per
study, :func:`run_sweep` runs what is not finished yet and writes one result bundle per
(label, backend)::

    OUT/studies/<label>/<task>/<backend>/seed-<n>/   manifest.json, trace.jsonl
    OUT/bundles/<label>/              (<label>-<backend> when the sweep has several backends)
    OUT/sweep.json                    what the last run did (done, skipped, failed, bundles)

**Resuming.** A study runs into ``<folder>.partial/`` and is renamed to ``<folder>`` only
when its trace ends with the ``final`` record (one atomic rename), so a killed sweep leaves
finished folders and at most one ``.partial`` folder per worker. A restart skips every
finished study, deletes the ``.partial`` folders and reruns those studies from their start.
Studies are deterministic, so a restarted sweep gives the same traces (clock fields aside) as
an uninterrupted one; on ``live`` an interrupted study's calls come back from the call cache,
so nothing is paid twice. A failed study's ``.partial`` folder stays for inspection until
the next run reruns it. A finished folder that was run with another configuration (method
options, protocol, pool, agent) is refused rather than silently kept: use a new ``--out``.

**Executors.** ``process`` (default): a process pool; each worker keeps one
:class:`~harness.study.Bench` per (task, backend, pool, protocol), since building one loads
the data and binds the backend. ``workers=1`` runs in this process. ``ray``: the same studies
as Ray tasks, locally or on a cluster (whose nodes must share the output folder). A study that
raises is reported as failed and the sweep goes on.

Example:
    >>> import pathlib, tempfile, yaml
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> config = {"name": "demo", "tasks": ["math"], "seeds": 2, "methods": ["random"]}
    >>> _ = (folder / "s.yaml").write_text(yaml.safe_dump(config))
    >>> config = load_sweep(folder / "s.yaml")
    >>> [spec.folder.relative_to(folder).as_posix() for spec in plan(config, folder)]
    ['studies/random/math/sim/seed-0', 'studies/random/math/sim/seed-1']
"""

from __future__ import annotations

from harness.sweep._bundles import bundle_name
from harness.sweep._config import EXECUTORS, MethodEntry, SweepConfig, load_sweep
from harness.sweep._plan import StudySpec, plan, study_finished
from harness.sweep._run import StudyOutcome, SweepProgress, SweepReport, run_sweep, sweep_status

__all__ = [
    "EXECUTORS",
    "MethodEntry",
    "StudyOutcome",
    "StudySpec",
    "SweepConfig",
    "SweepProgress",
    "SweepReport",
    "bundle_name",
    "load_sweep",
    "plan",
    "run_sweep",
    "study_finished",
    "sweep_status",
]
