"""report/index.html in a real headless Chromium (Debian's ``chromium``, installed by
``make setup``), driven with Playwright: the page of a small fake-backend run is opened from
disk, filtered to the questions one configuration got wrong, one is opened, and what the
page shows (the sample chosen in each group, the vote totals) is checked against
results.json and traces.jsonl, worked out here without ttc-eval's code."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from ttc_eval.backends.fake import FakeBackend, arithmetic_script
from ttc_eval.cli import main
from ttc_eval.registry import backend

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


HOSTILE = '<!--<script> </script> & \u2028 \u00fc "q" '
"""Text no page may choke on: it would end or confuse a script element, or break JSON."""


@backend("fake-hostile")
class HostileBackend(FakeBackend):
    """The fake backend whose odd samples open with :data:`HOSTILE`."""

    def __init__(self, model: str = "fake", progress: bool = False, **kw: Any) -> None:
        script = arithmetic_script()
        super().__init__(model, script=lambda p, i, s: (HOSTILE if i % 2 else "") + script(p, i, s))


def _run(backend_name: str = "fake-hostile", budgets: str = "1,2,4") -> Path:
    args = ["run", "--backend", backend_name, "--task", "arith", "--strategy",
            "majority,best_of_n", "--budgets", budgets, "--limit", "8", "--quiet",
            "--output-dir", "r"]  # fmt: skip
    assert main(args) == 0
    (run_dir,) = list(Path("r").iterdir())
    return run_dir


def _traces(run_dir: Path) -> dict[str, dict[str, Any]]:
    rows = [json.loads(x) for x in (run_dir / "traces.jsonl").read_text().splitlines()]
    return {t["problem_id"]: t for t in rows}


def _majority(cands: list[dict[str, Any]]) -> tuple[int | None, Counter[str]]:
    """lm-eval's self-consistency rule: the most frequent answer, ties to the first seen;
    the chosen sample is that answer's first holder."""
    votes = Counter(c["vote_key"] for c in cands if c["vote_key"] is not None)
    if not votes:
        return None, votes
    top = max(votes.values())
    first = next(c for c in cands if c["vote_key"] is not None and votes[c["vote_key"]] == top)
    return first["index"], votes


def _accuracy(cands: list[dict[str, Any]], k: int) -> float:
    """Majority's accuracy over the disjoint groups of k samples."""
    groups = [cands[g : g + k] for g in range(0, len(cands) // k * k, k)]
    picks = [_majority(group)[0] for group in groups]
    return sum(i is not None and cands[i]["correct"] for i in picks) / len(groups)


def test_report_page_in_a_real_browser(tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    assert CHROMIUM is not None, (
        "no chromium: `make setup` installs Debian's (apt-get install chromium)"
    )

    run_dir = _run()
    page_path = run_dir / "report" / "index.html"
    assert page_path.is_file()
    traces = _traces(run_dir)
    results = json.loads((run_dir / "results.json").read_text())
    (overall,) = [r for r in results["rows"] if r["config"] == "majority" and r["budget"] == 2
                  and r["label_kind"] == "all"]  # fmt: skip
    wrong = sorted(pid for pid, t in traces.items() if _accuracy(t["candidates"], 2) < 1)
    assert wrong, "the fake run should get some question wrong at budget 2"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(page_path.resolve().as_uri())
        # The accuracy table shows results.json's number for majority at budget 2.
        cells = page.locator("#rows tbody tr").all_inner_texts()
        line = next(c for c in cells if c.split("\t")[:2] == ["majority", "2"])
        assert float(line.split("\t")[4]) == pytest.approx(overall["accuracy"], abs=5e-4)
        assert page.locator("#figure-list img").count() >= 3
        # Sorted by accuracy, highest first (two clicks), the table keeps that order when it
        # is redrawn for another group of questions.
        page.click('#rows th[data-i="4"]')
        page.click('#rows th[data-i="4"]')
        other = page.locator("#row-group option").all_inner_texts()[-1]
        page.select_option("#row-group", other)
        assert other != "all"
        column = [float(c.split("\t")[4]) for c in page.locator("#rows tbody tr").all_inner_texts()]
        assert len(column) > 3 and column == sorted(column, reverse=True)
        assert page.locator('#rows th[data-i="4"]').get_attribute("aria-sort") == "descending"
        # Filter to the questions majority@2 got wrong (in some group).
        page.select_option("#f-config", "majority")
        page.select_option("#f-budget", "2")
        page.select_option("#f-verdict", "incorrect")
        listed = page.locator("#q-list li").evaluate_all("els => els.map(e => e.dataset.id)")
        assert listed == wrong
        pid = wrong[0]
        page.click(f'#q-list li[data-id="{pid}"]')
        page.wait_for_selector("#picks")
        cands = traces[pid]["candidates"]
        # The sample chosen in each disjoint group of 2 is majority's, computed here.
        shown = page.locator("#picks tr[data-group] td.pick").all_inner_texts()
        assert shown == [str(_majority(cands[g : g + 2])[0]) for g in (0, 2)]
        # Vote totals at budget 4 (the whole pool): the counts in traces.jsonl.
        votes = page.locator('table.votes tr[data-budget="4"] .vote').evaluate_all(
            "els => els.map(e => [e.dataset.answer, +e.dataset.n])"
        )
        assert dict(votes) == dict(_majority(cands)[1])
        # The gold answer shown is the question's (arith: the arithmetic in its text).
        a, op, b = page.locator("#qtext").inner_text().removeprefix("What is ")[:-1].split()
        gold = int(a) + int(b) if op == "+" else int(a) - int(b) if op == "-" else int(a) * int(b)
        assert page.locator("#gold").inner_text() == str(gold)
        assert page.locator(".sample").count() == len(cands)
        # The odd samples' text came through whole, as text.
        texts = page.locator('.sample[data-index="1"] .step').all_text_contents()
        assert "".join(texts).startswith(HOSTILE.strip()[:12])
        page.screenshot(path=str(tmp_path / "report.png"), full_page=False)
        browser.close()
    assert not errors, errors
    assert (tmp_path / "report.png").stat().st_size > 10_000


def test_view_prints_the_page_path(capsys: pytest.CaptureFixture[str]) -> None:
    run_dir = _run()
    capsys.readouterr()
    assert main(["view", str(run_dir), "--print-path"]) == 0
    assert capsys.readouterr().out.strip() == str((run_dir / "report" / "index.html").resolve())
    (run_dir / "report" / "index.html").unlink()
    assert main(["view", str(run_dir), "--print-path"]) == 2
    assert "ttc-eval report" in capsys.readouterr().err


def test_page_choices_are_the_strategys_own_in_the_first_groups() -> None:
    """The page lists a pool strategy's choices in at most the first PAGE_GROUPS groups,
    made on the pool cut after them: the same as its choices on the whole pool."""
    from ttc_eval.results import PAGE_GROUPS, _page_picks, _page_selections, _spans, load_run

    run_dir = _run("fake", budgets="1,2,128")
    view = load_run(run_dir)
    assert PAGE_GROUPS < 128  # budget 1 has more groups than the page lists
    page = _page_picks(view, sorted({pid for ev in view.evaluated for pid in ev.traces[1]}))
    checked = 0
    for ev in view.evaluated:
        for b in ev.budgets:
            for pid, trace in ev.traces[b].items():
                if ev.strategy.estimate(trace, b) is not None:
                    assert str(b) not in page[pid].get(ev.label, {})
                    continue
                whole = ev.strategy.select(trace, b)[:PAGE_GROUPS]
                assert _page_selections(ev.strategy, trace, b) == whole
                # What the page holds (from the arrays here: majority on a pool), read back
                # as the page's script reads it.
                shown = page[pid][ev.label][str(b)]
                if ev.label == "majority":  # the arrays' choices: read counts, not spans
                    assert all(isinstance(n, int) for n in shown["read"])
                read = [
                    _spans(range(g * b, g * b + n)) if isinstance(n, int) else n
                    for g, n in enumerate(shown["read"])
                ]
                assert shown["index"] == [s.index for s in whole]
                assert shown["answer"] == [s.answer for s in whole]
                assert shown["correct"] == [s.correct for s in whole]
                assert read == [_spans(s.read) for s in whole]
                checked += 1
    assert checked >= 8 * 3 * 2


def test_search_tree_in_a_real_browser() -> None:
    """A beam search's question shows its tree: per round, the beams kept, finished and
    pruned (with the verdict of a pruned beam's lookahead rollout), as traces.jsonl has them."""
    from playwright.sync_api import sync_playwright

    assert CHROMIUM is not None, "no chromium: `make setup` installs Debian's"
    args = ["run", "--backend", "fake", "--task", "arith", "--verifier", "fake-prm",
            "--strategy", "beam_search:width=2:lookahead=1", "--budgets", "4", "--limit", "3",
            "--quiet", "--output-dir", "r"]  # fmt: skip
    assert main(args) == 0
    (run_dir,) = list(Path("r").iterdir())
    traces = _traces(run_dir)
    pid = sorted(traces)[0]
    extra = traces[pid]["extra"]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto((run_dir / "report" / "index.html").resolve().as_uri())
        page.click(f'#q-list li[data-id="{pid}"]')
        page.wait_for_selector("table.tree")
        shown = page.locator("table.tree tr[data-round]").evaluate_all(
            "els => els.map(e => [+e.dataset.round, e.dataset.fate, e.cells[2].textContent,"
            " e.cells[6].textContent])"
        )
        browser.close()
    assert not errors, errors
    expected = []
    for level in extra["tree"]:
        r = level["round"]
        fates = [("kept", level["kept"]), ("finished", level["finished"]),
                 ("cut", level.get("unfinished", [])),
                 ("pruned", [b for b in extra["pruned"] if b["round"] == r])]  # fmt: skip
        for fate, beams in fates:
            expected += [
                (r, fate, "question" if b["from"] < 0 else f"{r - 1}.{b['from']}") for b in beams
            ]
    assert [tuple(s[:3]) for s in shown] == expected
    assert sum(1 for s in shown if s[1] == "pruned") == len(extra["pruned"]) > 0
    # A pruned beam whose rollout was right is flagged as a correct path pruned.
    flagged = sum(1 for s in shown if "a correct path was pruned" in s[3])
    assert flagged == sum(1 for b in extra["pruned"] if b.get("correct"))


@pytest.mark.parametrize(
    "text", ["", "\n\n", "a", "a\n\nb", "  a \n\n\n\n b\n\n", "x\n\n \n\ny", HOSTILE + "\n\nz"]
)
def test_the_page_splits_steps_as_the_verifier_does(text: str) -> None:
    from ttc_eval.verifiers._base import split_steps, step_texts

    for delimiter in ("\n\n", "\n", "Step"):
        assert step_texts(text, delimiter) == split_steps(text, delimiter)[0]


def test_the_page_embeds_only_the_figures_its_report_drew() -> None:
    """A PNG left in report/ by something else (an older report) is not shown as this
    run's figure."""
    run_dir = _run()
    shutil.copy(run_dir / "report" / "accuracy_by_budget_all.png", run_dir / "report" / "old.png")
    assert main(["report", str(run_dir)]) == 0
    page = (run_dir / "report" / "index.html").read_text()
    assert '"accuracy_by_budget_all.png":"data:image/png;base64,' in page
    assert "old.png" not in page
