"""report/index.html at 500 questions x 64 samples: its size, how long ``ttc-eval report``
takes with it, and how long it takes a real browser to load it and open a question.

The run is bench_scale.py's synthetic MATH-500-shaped dump (seeded), imported with the
generic importer, its strategy list rewritten to ``STRATEGIES`` (every one reads the
imported pool; see bench_scale.py). The page is then opened from disk in headless Chromium
(Debian's ``chromium``, as the browser test uses) through Playwright, ``--repeats`` times:
load is the time from navigation until the question list is drawn; open is the time from
a click on a question until its samples are drawn. Medians are reported.

    python benchmarks/bench_report_page.py [--questions 500] [--samples 64] [--repeats 3]
    python benchmarks/bench_report_page.py --samples 256 --configs scale --repeats 1
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_scale import STRATEGIES as SCALE_STRATEGIES
from bench_scale import TASK, _child, synthesize

STRATEGIES = ("majority", "best_of_n", "best_of_n:mode=naive", "esc")
"""Configurations the page shows (coverage is added by the report)."""


def browser_times(page: Path, repeats: int) -> dict[str, object]:
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise SystemExit("no chromium: `apt-get install chromium` (make setup does)")
    loads, opens = [], []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        for _ in range(repeats):
            tab = browser.new_page(viewport={"width": 1400, "height": 1000})
            start = time.perf_counter()
            tab.goto(page.resolve().as_uri(), timeout=300_000)
            tab.wait_for_selector("#q-list li", timeout=300_000)
            loads.append(time.perf_counter() - start)
            start = time.perf_counter()
            tab.click("#q-list li >> nth=0")
            tab.wait_for_selector("#q-detail .sample")
            opens.append(time.perf_counter() - start)
            shown = tab.locator("#q-list li").count()
            tab.close()
        browser.close()
    return {
        "load_s": statistics.median(loads),
        "open_question_s": statistics.median(opens),
        "loads_s": loads,
        "opens_s": opens,
        "questions_listed": shown,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--questions", type=int, default=500)
    ap.add_argument("--samples", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--configs",
        choices=["page", "scale"],
        default="page",
        help="page: the 4 configurations above; scale: bench_scale.py's 10 (its report target)",
    )
    ap.add_argument("--out", default=None, help="working folder (default: a new temp folder)")
    ap.add_argument("--json", default="benchmarks/results/report_page.json")
    a = ap.parse_args()
    out = Path(a.out or tempfile.mkdtemp(prefix="bench-page-"))
    out.mkdir(parents=True, exist_ok=True)
    cli = [sys.executable, "-m", "ttc_eval"]
    dump = out / "dump.jsonl"
    synthesize(dump, a.questions, a.samples, a.seed)
    imported = _child(
        [*cli, "import", "generic", str(dump), "--task", TASK, "--output-dir", str(out / "runs")],
        out / "import.log",
    )
    if imported["rc"] != 0:
        raise SystemExit(f"the import failed; see {out / 'import.log'}")
    (run_dir,) = [d for d in (out / "runs").iterdir() if (d / "config.json").is_file()]
    from ttc_eval.config import StrategySpec

    record = json.loads((run_dir / "config.json").read_text())
    strategies = STRATEGIES if a.configs == "page" else SCALE_STRATEGIES
    record["config"]["strategies"] = [StrategySpec.parse(s).to_dict() for s in strategies]
    (run_dir / "config.json").write_text(json.dumps(record, indent=2) + "\n")
    reported = _child([*cli, "report", str(run_dir)], out / "report.log")
    if reported["rc"] != 0:
        raise SystemExit(f"the report failed; see {out / 'report.log'}")
    page = run_dir / "report" / "index.html"
    times = browser_times(page, a.repeats)
    result = {
        "questions": a.questions,
        "samples": a.samples,
        "strategies": list(strategies),
        "page_bytes": page.stat().st_size,
        "report_wall_s": reported["wall_s"],
        "report_peak_rss_bytes": reported["peak_rss_bytes"],
        **times,
    }
    Path(a.json).parent.mkdir(parents=True, exist_ok=True)
    Path(a.json).write_text(json.dumps(result, indent=2) + "\n")
    mib = page.stat().st_size / 2**20
    print(f"{a.questions} questions x {a.samples} samples, {len(strategies)} configurations")
    print("| what | figure |\n| --- | --- |")
    print(f"| report/index.html size | {mib:.1f} MiB |")
    print(f"| `ttc-eval report` (page included) | {reported['wall_s']:.1f} s wall |")
    print(f"| page load in headless Chromium (median of {a.repeats}) | {times['load_s']:.2f} s |")
    print(f"| open a question (median) | {times['open_question_s']:.3f} s |")


if __name__ == "__main__":
    main()
