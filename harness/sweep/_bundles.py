"""One result bundle per (label, backend) once the studies are done, and the sweep's report."""

from __future__ import annotations

import functools
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.errors import HarnessError
from harness.sweep._config import SweepConfig, _one_line
from harness.sweep._plan import plan

if TYPE_CHECKING:
    from harness.sweep._run import SweepReport  # the report is made there; no import cycle

# ----- bundles and the report -------------------------------------------------------------


def bundle_name(config: SweepConfig, label: str, backend: str) -> str:
    """A bundle's folder name: the label, with the backend when the sweep has several."""
    return label if len(config.backends) == 1 else f"{label}-{backend}"


def _write_bundles(config: SweepConfig, out: Path, report: SweepReport) -> None:
    """One bundle per (label, backend) whose studies all finished; rebuilt by a swap."""
    try:
        from harness.bundle import write_bundle
    except ImportError as exc:
        report.notes.append(f"bundles skipped: harness.bundle is not available ({exc})")
        return
    if sorted(config.seeds) != list(range(len(config.seeds))):
        report.notes.append(
            "bundles skipped: a bundle holds seeds 0..N-1, and this sweep's are not"
        )
        return
    failed = {(o.spec.label, o.spec.backend) for o in report.failed}
    specs = plan(config, out)
    for entry in config.methods:
        for backend in config.backends:
            name = bundle_name(config, entry.label, backend)
            if (entry.label, backend) in failed:
                report.notes.append(f"bundle {name} not written: some of its studies failed")
                continue
            dirs = [s.folder for s in specs if s.label == entry.label and s.backend == backend]
            target = out / "bundles" / name
            try:
                _swap_in(target, functools.partial(_bundle, write_bundle, entry.label, dirs))
            except (HarnessError, OSError) as exc:
                report.bundle_errors.append(f"bundle {name}: {_one_line(exc)}")
                continue
            report.bundles.append(target)


def _bundle(write_bundle: Any, name: str, dirs: list[Path], folder: Path) -> None:
    write_bundle(folder, name=name, study_dirs=dirs)


def _swap_in(target: Path, write: Callable[[Path], Any]) -> None:
    """Write a folder beside ``target`` and swap it in, so a reader never sees half of one."""
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}."))
    try:
        fresh = scratch / "new"
        write(fresh)
        if target.exists():
            os.rename(target, scratch / "old")
        os.rename(fresh, target)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _report_json(config: SweepConfig, report: SweepReport) -> dict[str, Any]:
    return {
        "name": config.name,
        "config": str(config.source),
        "protocol": config.protocol.to_json(),
        "pool": config.pool_name,
        "total": report.total,
        "done": sorted(o.spec.key for o in report.done),
        "skipped": sorted(s.key for s in report.skipped),
        "failed": [{"study": o.spec.key, "error": o.error} for o in report.failed],
        "bundles": [str(p.relative_to(report.out)) for p in report.bundles],
        "notes": report.notes + report.bundle_errors,
        "wall_s": round(report.wall_s, 2),
    }
