"""The :class:`Task`: a data set, prompts per role, an answer extractor and a scorer, from YAML."""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from harness.errors import ConfigError, DataError, DataUnavailable
from harness.paths import tasks_dir
from harness.tasks._config import SOURCES, TaskConfig, read_config
from harness.tasks._prompts import render_messages
from harness.tasks._scorers import SCORERS, HumanEvalScorer, Scorer
from harness.tasks._sources import load_source
from harness.tasks._splits import split_items
from harness.tasks._types import Item, Score, TaskData

__all__ = ["Task", "load_task", "task_names"]

_log = logging.getLogger("harness.tasks")
_SCORER_OPTIONS = {name: scorer.OPTIONS for name, scorer in SCORERS.items()}


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class Task:
    r"""A benchmark task, as its YAML file under ``tasks/`` defines it.

    Build one with :func:`load_task`. A task is immutable; :meth:`with_code_execution` returns
    a copy allowed (or forbidden) to run generated code.

    Attributes:
        config: the checked YAML content.
        yaml_path: the file it came from.
        allow_code_execution: run generated code when scoring; None means "as the environment
            says" (``HARNESS_ALLOW_CODE_EXECUTION=1``).

    Example:
        >>> from harness.tasks import load_task
        >>> task = load_task("math")
        >>> task.lengths
        (202, 275)
        >>> task.score_text("5", r"The answer is \boxed{\frac{10}{2}}.").correct
        True
    """

    config: TaskConfig = field(repr=False)
    yaml_path: Path
    allow_code_execution: bool | None = None

    @property
    def name(self) -> str:
        """The task's name (its YAML file's stem)."""
        return self.config.name

    @property
    def description(self) -> str:
        """One line saying what the task is."""
        return self.config.description

    @property
    def lengths(self) -> tuple[int, int]:
        """(A, B): mean prompt and output tokens of one node call, for the FLOPs formula."""
        return self.config.lengths

    @property
    def code_execution_required(self) -> bool:
        """Whether scoring runs generated code (HumanEval)."""
        return issubclass(SCORERS[self.config.scorer], HumanEvalScorer)

    @property
    def code_execution_allowed(self) -> bool:
        """Whether :meth:`score` will run generated code now."""
        if self.allow_code_execution is not None:
            return self.allow_code_execution
        return _truthy(os.environ.get("HARNESS_ALLOW_CODE_EXECUTION"))

    @property
    def scorer(self) -> Scorer:
        """The task's scorer, configured with the YAML's ``options``."""
        return SCORERS[self.config.scorer](self.config.options)

    def with_code_execution(self, allow: bool = True) -> Task:
        """A copy of the task that may (or may not) run generated code when scoring.

        Example:
            >>> load_task("humaneval").with_code_execution().code_execution_allowed
            True
        """
        return dataclasses.replace(self, allow_code_execution=allow)

    def load(
        self,
        data_dir: Path | str | None = None,
        source: str | None = None,
        *,
        use_cache: bool = True,
    ) -> TaskData:
        """Load the task's items and form the search and held-out splits.

        Sources are tried in order: ``local`` (only when a data folder is given or
        ``HARNESS_DATA_DIR`` is set), ``hub``, ``mirror``; the first that serves the held-out
        data wins. ``hub`` and ``mirror`` results are cached under ``cache_dir()/items``.

        Args:
            data_dir: a local folder with the layout of the shared data (see docs/tasks.md);
                default ``$HARNESS_DATA_DIR``.
            source: force one source (one of :data:`SOURCES`) instead of the fall-through.
            use_cache: read and write the item cache.

        Raises:
            ConfigError: an unknown source name.
            DataError: no source could serve the data (the message lists each one's reason).

        Example:
            >>> data = load_task("humaneval").load("../shared/data", source="local")
            >>> len(data.search), len(data.heldout), data.source
            (131, 33, 'local')
        """
        if data_dir is None and os.environ.get("HARNESS_DATA_DIR"):
            data_dir = os.environ["HARNESS_DATA_DIR"]
        folder = Path(data_dir).expanduser() if data_dir is not None else None
        if source is not None and source not in SOURCES:
            raise ConfigError(
                f"unknown data source {source!r}: expected one of {', '.join(SOURCES)}"
            )
        if source is not None:
            order: Sequence[str] = (source,)
        else:
            order = [name for name in SOURCES if name != "local" or folder is not None]
        failures = []
        for name in order:
            try:
                loaded = load_source(self.config, name, folder, use_cache=use_cache)
            except DataUnavailable as exc:
                # Only absence falls through: data that is there but broken (bad JSON, a
                # checksum mismatch) is a fault to report, not a reason to serve other data.
                if len(order) == 1:
                    raise
                # A local folder the user named is expected to work: say so louder.
                level = logging.WARNING if name == "local" else logging.INFO
                _log.log(level, "%s: source %s failed, trying the next: %s", self.name, name, exc)
                failures.append(str(exc))
                continue
            search, heldout, scheme = split_items(
                loaded.heldout,
                _without(loaded.search, loaded.heldout),
                seed=self.config.seed,
                search_size=self.config.search_size,
                heldout_label=self.config.heldout.label,
                search_label=self.config.search.label if self.config.search else None,
                why_seeded=loaded.why_no_search,
            )
            return TaskData(self.name, search, heldout, loaded.label, scheme)
        raise DataError(f"{self.name}: no data source could serve it: {' | '.join(failures)}")

    def prompt(self, role: str, question: str, inputs: Sequence[str] = ()) -> list[dict[str, str]]:
        """The chat messages for one node call.

        Args:
            role: ``assistant`` (alone without inputs; with inputs it reads them, evaluates them
                critically and synthesises one answer), ``fuser`` (fuses its inputs' reasoning)
                or ``output`` (the output node: an assistant over all inputs).
            question: the item's question text.
            inputs: the predecessors' outputs.

        Example:
            >>> messages = load_task("gsm8k").prompt("assistant", "What is 2 + 3?")
            >>> [m["role"] for m in messages]
            ['system', 'user']
        """
        return render_messages(self.config.prompts, role, question, inputs)

    def extract(self, text: str, item: Item | None = None) -> str | None:
        r"""The answer a model output gives, or None (``item`` helps MMLU and HumanEval).

        Example:
            >>> load_task("math").extract(r"<think>maybe 3</think> so \boxed{4}")
            '4'
        """
        try:
            return self.scorer.extract(text if isinstance(text, str) else str(text), item)
        except Exception:
            return None

    def score(self, item: Item, text: str) -> Score:
        """Score one model output on one item; never raises, whatever the output."""
        return self.scorer.score(item, text, allow_code_execution=self.code_execution_allowed)

    def score_text(self, gold: str, text: str) -> Score:
        """Score an output against a bare gold answer (no item at hand; not for code tasks)."""
        return self.score(Item("-", "", gold), text)


def _without(search: list[Item] | None, heldout: list[Item]) -> list[Item] | None:
    # A search item that is also held out would leak the held-out score: drop it.
    if search is None:
        return None
    held = {item.question for item in heldout}
    return [item for item in search if item.question not in held]


def task_names() -> list[str]:
    """The names of the tasks defined under ``tasks/`` (sorted).

    Example:
        >>> task_names()
        ['gsm8k', 'humaneval', 'math', 'mmlu']
    """
    return sorted(path.stem for path in tasks_dir().glob("*.yaml"))


def load_task(name: str) -> Task:
    """The task called ``name``, read from ``tasks/<name>.yaml``.

    Raises:
        ConfigError: an unknown name (the message lists the known ones), or a malformed file
            (the message names the file and the field).

    Example:
        >>> load_task("mmlu").lengths
        (213, 215)
    """
    path = tasks_dir() / f"{name}.yaml"
    if not isinstance(name, str) or "/" in name or not path.is_file():
        raise ConfigError(f"unknown task {name!r}: known tasks are {', '.join(task_names())}")
    return Task(read_config(path, _SCORER_OPTIONS), path)
