from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def setup_commands() -> list[str]:
    text = (REPO / "README.md").read_text()
    block = text.split("```sh\n", 1)[1].split("```", 1)[0]
    return [line for line in block.splitlines() if line.strip()]


def test_readme_starts_with_exactly_two_setup_commands():
    commands = setup_commands()
    assert len(commands) == 2
    main_job, tests = commands
    assert "pip install -e ." in main_job and "harness" in main_job
    assert "pytest" in tests and "[test,server]" in tests and "serve --fetch-only" in tests


def test_ci_runs_the_readme_test_command_verbatim():
    ci = (REPO / ".ci" / "run").read_text().splitlines()
    assert setup_commands()[1] in ci


def test_no_machine_specific_paths_in_tracked_text():
    for path in [REPO / "README.md", REPO / ".ci" / "run", *(REPO / "docs").glob("*.md")]:
        text = path.read_text()
        assert "/work/" not in text and "/root/" not in text and "/tmp/wh" not in text, path
