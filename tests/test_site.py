"""The leaderboard site: built from real bundles, checked in a real headless Chromium.

The fixture runs real studies (sim backend, a tiny protocol) of random, parallel and evolution
and of a file method with hostile texts on math and gsm8k, bundles them with write_bundle, and
adds bad bundles: a changed trace (hash), a missing manifest, a bundle.json that is not JSON, a
bundle renamed to ``<script>alert(1)</script>`` (not a valid name), a second bundle under a
name already taken, and a valid bundle run under a smaller budget than the others. The pages
are opened from file:// with Playwright and Debian's Chromium.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.bundle import write_bundle
from harness.cli import main
from harness.protocol import load_protocol
from harness.site import MARKER, SiteReport, build_site, slug
from harness.study import Bench

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
XSS = "<script>alert(1)</script>"
XSS_DESCRIPTION = "<img src=x onerror=alert(2)>"
ENTRIES = ("evolution-search", "hostile-texts", "parallel-search", "random-search")
TINY = """\
name: tiny
question_evals: 6
batch_size: 3
budget_level: 12
max_nodes: 12
checkpoint_every: 3
heldout_size: 40
seeds: 2
pool: llama3
"""
HOSTILE_METHOD = f'''\
"""A file method whose texts try to inject markup into the site."""

from baselines.random_search import RandomSearch


class HostileSearch(RandomSearch):
    """{XSS_DESCRIPTION} random search under a hostile name."""

    name = "{XSS}"
    version = "1"
'''


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("site")
    (work / "tiny.yaml").write_text(TINY)
    source = work / "hostile_method.py"
    source.write_text(HOSTILE_METHOD)
    protocol = load_protocol(work / "tiny.yaml")
    methods = {
        "random": "random-search",
        "parallel": "parallel-search",
        "evolution": "evolution-search",
        f"{source}:HostileSearch": "hostile-texts",
    }
    runs: dict[str, list[Path]] = {m: [] for m in methods}
    for task in ("math", "gsm8k"):
        bench = Bench(task, protocol, "sim")
        for method in methods:
            for seed in (0, 1):
                out = work / "studies" / f"{methods[method]}-{task}-{seed}"
                bench.run(method, seed=seed, out_dir=out)
                runs[method].append(out)
    root = work / "results"
    for method, name in methods.items():
        write_bundle(
            root / "official" / name,
            name,
            runs[method],
            method_source=source if ":" in method else None,
        )
    # The bad ones, named so that some sort before the good ones.
    short = Bench("math", protocol.with_budget(3), "sim")
    short_runs = [
        short.run("random", seed=seed, out_dir=work / "short" / str(seed)) for seed in (0, 1)
    ]
    write_bundle(
        root / "04-short-budget", "short-budget", [r.trace.parent for r in short_runs if r.trace]
    )
    tampered = root / "00-tampered-trace"
    shutil.copytree(root / "official" / "random-search", tampered)
    trace = tampered / "studies" / "math" / "seed-0" / "trace.jsonl"
    text = trace.read_text()
    # Flip the first recorded accuracy, whatever it is (a search may never score 0 on a batch).
    first = re.search(r'"accuracy":([0-9.]+)', text)
    assert first is not None
    forged = "0.0" if float(first.group(1)) > 0.5 else "1.0"
    trace.write_text(text[: first.start(1)] + forged + text[first.end(1) :])
    assert trace.read_text() != text
    _rename(tampered, "tampered-trace")
    missing = root / "01-missing-file"
    shutil.copytree(root / "official" / "parallel-search", missing)
    (missing / "studies" / "gsm8k" / "seed-1" / "manifest.json").unlink()
    _rename(missing, "missing-file")
    (root / "02-not-json").mkdir()
    (root / "02-not-json" / "bundle.json").write_text("{this is not JSON")
    hostile = root / "03-hostile-name"
    shutil.copytree(root / "official" / "evolution-search", hostile)
    _rename(hostile, XSS)
    shutil.copytree(root / "official" / "evolution-search", root / "zz-same-name")
    return root


def _rename(bundle: Path, name: str) -> None:
    meta = json.loads((bundle / "bundle.json").read_text())
    meta["name"] = name
    (bundle / "bundle.json").write_text(json.dumps(meta, indent=2))


@pytest.fixture(scope="module")
def built(results: Path) -> tuple[SiteReport, Path]:
    out = results.parent / "site"
    return build_site(results, out), out


def _tree(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


# ----- the build ------------------------------------------------------------------------------


def test_build_accepts_the_good_bundles_and_lists_the_bad(built: tuple[SiteReport, Path]) -> None:
    report, out = built
    assert report.accepted == ENTRIES
    assert len(report.found) == 10
    reasons = {r.path: " ".join(r.reasons) for r in report.rejected}
    assert set(reasons) == {
        "00-tampered-trace", "01-missing-file", "02-not-json", "03-hostile-name",
        "04-short-budget", "zz-same-name",
    }  # fmt: skip
    assert "SHA-256 does not match" in reasons["00-tampered-trace"]
    assert "missing" in reasons["01-missing-file"]
    assert "not a JSON file" in reasons["02-not-json"]
    assert "'name'" in reasons["03-hostile-name"]
    assert "duplicate name 'evolution-search'" in reasons["zz-same-name"]
    assert "another protocol" in reasons["04-short-budget"]
    assert "question_evals 3, leaderboard 6" in reasons["04-short-budget"]
    names = {r.path: r.name for r in report.rejected}
    assert names["03-hostile-name"] == XSS and names["02-not-json"] is None
    # Reasons are one line each and name no folder outside the results.
    assert all(
        "\n" not in r and str(out.parent) not in r for b in report.rejected for r in b.reasons
    )
    assert report.index == out / "index.html" and report.index.is_file()
    assert (out / MARKER).is_file()
    pages = {p.relative_to(out).as_posix() for p in report.pages}
    assert pages == {"index.html", *(f"entries/{slug(name)}.html" for name in ENTRIES)}
    assert report.warnings == ()


def test_data_files_hold_the_stats_the_summaries_and_every_bundle(
    built: tuple[SiteReport, Path],
) -> None:
    _, out = built
    stats = json.loads((out / "data" / "leaderboard.json").read_text())
    assert sorted(stats["entries"]) == list(ENTRIES)
    assert sorted(stats["tasks"]) == ["gsm8k", "math"]
    assert stats["baseline"] == "random-search"
    assert stats["tasks"]["math"]["entries"]["random-search"]["normalised_score"] == 0.0
    summaries = json.loads((out / "data" / "summaries.json").read_text())
    assert len(summaries) == 16 and {s["entry"] for s in summaries} == set(ENTRIES)
    bundles = json.loads((out / "data" / "bundles.json").read_text())
    assert [b["name"] for b in bundles["accepted"]] == list(ENTRIES)
    assert len(bundles["rejected"]) == 6 and all(b["reasons"] for b in bundles["rejected"])
    source = next(out.glob("sources/*.py.txt")).read_text()
    assert f'name = "{XSS}"' in source


def test_pages_escape_bundle_text_and_need_nothing_but_their_files(
    built: tuple[SiteReport, Path],
) -> None:
    _, out = built
    for page in [out / "index.html", *sorted((out / "entries").glob("*.html"))]:
        html = page.read_text()
        assert XSS not in html and XSS_DESCRIPTION not in html
        assert "http://" not in html.replace("http://www.w3.org", "")
        assert "https://" not in html and "<script>" not in html
        assert html.count("<script ") == 1  # the one local static/sort.js
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in (out / "index.html").read_text()


def test_rebuilding_gives_byte_identical_files(
    results: Path, built: tuple[SiteReport, Path]
) -> None:
    _, out = built
    before = _tree(out)
    build_site(results, out)  # replaces the folder it made
    assert _tree(out) == before
    elsewhere = results.parent / "site-again"
    build_site(results, elsewhere)
    assert _tree(elsewhere) == before


def test_a_figure_that_fails_is_a_note_not_a_failed_build(
    results: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from harness import plots

    def broken(*args: Any, **kwargs: Any) -> list[Path]:
        raise RuntimeError("injected plot failure")

    monkeypatch.setattr(plots, "plot_pareto", broken)
    report = build_site(results, tmp_path / "site")
    assert report.accepted == ENTRIES
    assert len(report.warnings) == 2 and "injected plot failure" in report.warnings[0]
    assert "no plot (RuntimeError)" in report.index.read_text()
    assert not list((tmp_path / "site" / "plots").glob("pareto-*"))


def test_cli_builds_and_reports(
    results: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "published"
    status = main(["leaderboard", "build", "--results", str(results), "--out", str(out)])
    printed = capsys.readouterr().out
    assert status == 0
    assert "10 found, 4 accepted, 6 rejected" in printed
    assert "rejected 02-not-json: " in printed
    assert f"site: {out.resolve() / 'index.html'}" in printed


@pytest.mark.parametrize("where", ["results", "parent", "repo", "foreign", "file"])
def test_cli_refuses_unsafe_out(
    where: str, results: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    foreign = tmp_path / "someone-elses"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    (tmp_path / "a-file").write_text("")
    out = {
        "results": results,
        "parent": results.parent,
        "repo": REPO,
        "foreign": foreign,
        "file": tmp_path / "a-file",
    }[where]
    status = main(["leaderboard", "build", "--results", str(results), "--out", str(out)])
    err = capsys.readouterr().err
    assert status == 2
    assert err.startswith("harness: error: --out") and err.count("\n") == 1
    assert (foreign / "notes.txt").read_text() == "keep me"


def test_cli_refuses_a_missing_results_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = main(["leaderboard", "build", "--results", str(tmp_path / "nope")])
    assert status == 2 and "does not exist" in capsys.readouterr().err


# ----- in a real browser ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        reason = f"{CHROMIUM} is missing (Debian: apt-get install chromium)"
        if os.environ.get("CI"):
            pytest.fail(f"{reason}; CI must install it")
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        try:
            yield chromium
        finally:
            chromium.close()


class Watched:
    """A page with every console error, page error, dialog and request recorded."""

    def __init__(self, browser: Any) -> None:
        self.page = browser.new_page(viewport={"width": 1280, "height": 900})
        self.errors: list[str] = []
        self.dialogs: list[str] = []
        self.requests: list[str] = []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("dialog", self._dialog)
        self.page.on("request", lambda r: self.requests.append(r.url))

    def _dialog(self, dialog: Any) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def open(self, path: Path) -> Any:
        self.page.goto(path.as_uri(), wait_until="load")
        return self.page

    def images(self) -> list[tuple[str, int]]:
        return self.page.eval_on_selector_all(
            "img", "els => els.map(e => [e.getAttribute('src'), e.naturalWidth])"
        )

    def check_clean(self) -> None:
        assert self.errors == [] and self.dialogs == []
        assert all(url.startswith("file://") for url in self.requests), self.requests


def _column(page: Any, table: str, index: int) -> list[str]:
    return page.eval_on_selector_all(
        f"{table} tbody tr",
        f"rows => rows.map(r => r.cells[{index}].getAttribute('data-sort'))",
    )


def test_index_tables_sort_both_ways(browser: Any, built: tuple[SiteReport, Path]) -> None:
    _, out = built
    watched = Watched(browser)
    page = watched.open(out / "index.html")
    for task in ("math", "gsm8k"):
        table = f'table.leaderboard[data-task="{task}"]'
        assert page.locator(f"{table} tbody tr").count() == len(ENTRIES)
        headers = page.locator(f"{table} thead th")
        labels = [headers.nth(i).inner_text().strip(" ▲▼⇅") for i in range(headers.count())]
        assert labels[:7] == [
            "rank", "entry", "method", "backend", "agent", "seeds", "held-out accuracy % (95% CI)",
        ]  # fmt: skip
        assert labels[7:] == [
            "normalised score", "AUC", "FLOPs units", "latency s", "agent calls", "agent $",
        ]  # fmt: skip
        for index in (labels.index("latency s"), labels.index("held-out accuracy % (95% CI)")):
            header = headers.nth(index)
            header.locator("button").click()
            assert header.get_attribute("aria-sort") == "ascending"
            values = [float(v) for v in _column(page, table, index)]
            assert values == sorted(values)
            header.locator("button").click()
            assert header.get_attribute("aria-sort") == "descending"
            values = [float(v) for v in _column(page, table, index)]
            assert values == sorted(values, reverse=True)
        entry = headers.nth(1)
        entry.locator("button").click()
        assert _column(page, table, 1) == list(ENTRIES)
        entry.locator("button").click()
        assert _column(page, table, 1) == list(reversed(ENTRIES))
        assert headers.nth(0).get_attribute("aria-sort") == "none"
    watched.check_clean()


def test_index_shows_every_figure_the_rejected_and_hostile_text(
    browser: Any, built: tuple[SiteReport, Path]
) -> None:
    _, out = built
    watched = Watched(browser)
    page = watched.open(out / "index.html")
    images = watched.images()
    assert len(images) == 5  # curves and Pareto per task, rank versus budget
    assert all(width > 0 for _, width in images), images
    # The hostile method name is text in the table (and in the rejected list), never markup.
    assert page.locator("table.leaderboard td", has_text=XSS).count() == 2
    rejected = page.locator("#rejected-table tbody tr")
    assert rejected.count() == 6
    text = page.locator("#rejected-table").inner_text()
    for expected in ("00-tampered-trace", "SHA-256 does not match", "02-not-json", XSS):
        assert expected in text
    assert page.evaluate("document.querySelectorAll('script').length") == 1
    assert page.evaluate("document.querySelectorAll('img[src=\"x\"]').length") == 0
    for name in ENTRIES:
        assert page.locator(f'a[href="entries/{slug(name)}.html"]').count() >= 1
    watched.check_clean()


def test_entry_pages_show_settings_graphs_and_source(
    browser: Any, built: tuple[SiteReport, Path]
) -> None:
    _, out = built
    watched = Watched(browser)
    for name in ENTRIES:
        page = watched.open(out / "entries" / f"{slug(name)}.html")
        assert page.locator("h1").inner_text() == name
        images = watched.images()
        assert images and all(width > 0 for _, width in images), images
        assert page.locator("#results-table tbody tr").count() == 2
        assert page.locator("#studies-table tbody tr").count() == 4
        assert "| output |" in page.locator("#graphs pre").first.inner_text()
    hostile = watched.open(out / "entries" / f"{slug('hostile-texts')}.html")
    about = hostile.locator("#about").inner_text()
    assert XSS in about and XSS_DESCRIPTION in about
    assert "edge_prob" in hostile.locator("#settings-table").inner_text()
    hostile.locator("#source a").click()
    assert f'name = "{XSS}"' in hostile.locator("body").inner_text()
    watched.check_clean()
