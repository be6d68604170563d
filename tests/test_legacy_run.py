"""A run directory written by ttc-eval 0.1.0 (commit e2e2ab0) still loads, with the same numbers.

``tests/data/legacy_run_v0_1/`` holds config.json, log.jsonl, traces.jsonl and results.json
exactly as that release wrote them (its report/ folder of figures and tables was left out, and
so was the .lock file), from a detached checkout of e2e2ab0 at /work/wt-fixture, with the
scripted fake backend:

    cd /tmp/ttc-legacy-fixture && PYTHONPATH=/work/wt-fixture \\
        TTC_EVAL_CACHE=/tmp/ttc-legacy-fixture/cache HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 \\
        /work/main/.venv/bin/python -m ttc_eval.cli run --backend fake --model fake \\
        --task arith --no-cache --limit 10 --budgets 1,4 \\
        --strategy greedy,majority,best_of_n,revisions --verifier logprob \\
        --bins oracle,predicted --output-dir runs --leaderboard-dir lb \\
        --run-id legacy-v0.1 --quiet

No beam search: at e2e2ab0 no built-in verifier scores search steps on the fake backend
(logprob refuses beam_search and dvts, self-judge needs next-token scores). Budgets 1,4 and
oracle/predicted bins only keep the fixture near 150 kB (every label bin adds a row per
strategy and budget).

Rebuilding the results from the stored traces must give back every committed row,
compute-optimal choice and difficulty bin exactly: floats are compared with ``==``, since
nothing is sampled again. Never regenerate the fixture with newer code; that would hide the
very changes it is here to catch. If a number moves on purpose, say so in the commit and
update results.json by hand.

config.json records absolute paths of the machine that wrote it: ``leaderboard_dir``
(/tmp/ttc-legacy-fixture/lb) and ``task_spec``; log.jsonl records the writer's argv. Nothing
reads task_spec or argv. The leaderboard would go to ``leaderboard_dir``, so the tests pass
their own: build_results takes it as an argument, and for the CLI (which has no such flag on
``report``) the copy's config.json has that one key rewritten into tmp_path.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

# The one import of the code under test; if build_results moves, change it here only.
from ttc_eval.runner import build_results

FIXTURE = Path(__file__).resolve().parent / "data" / "legacy_run_v0_1"
# results.json's run_id is the run directory's name, so the copy keeps the recorded run id.
RUN_ID = "legacy-v0.1"

# What identifies a row of results.json: the strategy with its arguments (``config`` is the
# label, e.g. revisions(select=majority,sequential=2)), the budget N, the binning
# (all / oracle / predicted) and the bin within it.
ROW_KEYS = ("config", "budget", "label_kind", "label")
# A compute-optimal choice: the binning, the bin and the budget.
OPTIMAL_KEYS = ("bin_kind", "bin", "budget")

# Fields that may change between code versions without any number changing; every other
# field of an old row must come back equal.
EXCLUDED_ROW_FIELDS = frozenset(
    {
        # The harness's version string: a later release may stamp its own version on the
        # rows it rebuilds (e.g. 0.2.0) while every number stays the same.
        "ttc_eval_version",
    }
)
EXCLUDED_TOP_FIELDS = EXCLUDED_ROW_FIELDS | {
    # Notes naming the component versions that differ between the writer and the code
    # rebuilding the results; any release after 0.1.0 may legitimately add notes here.
    "stale_versions",
    # The sections below are compared key by key in their own tests.
    "rows",
    "compute_optimal",
    "difficulty",
    "compute",
    "flops",
}
EXCLUDED_DIFFICULTY_FIELDS = frozenset(
    {
        # Prose pointing at a module path (ttc_eval.analysis.bins.quantile_bins), which a
        # refactor may move; the bins themselves are compared.
        "note",
        # Compared question by question in the test itself.
        "questions",
    }
)
EXCLUDED_FLOPS_FIELDS = frozenset(
    {
        # Prose describing the formula, not a number.
        "formula",
    }
)


def _copy_fixture(tmp_path: Path) -> Path:
    run_dir = tmp_path / "runs" / RUN_ID
    shutil.copytree(FIXTURE, run_dir)
    return run_dir


def _load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def _differences(
    where: str, old: Mapping[str, Any], new: Mapping[str, Any], excluded: Iterable[str]
) -> list[str]:
    """Every field of ``old`` (less ``excluded``) that ``new`` lacks or holds another value in."""
    skip = set(excluded)
    out = []
    for key, value in old.items():
        if key in skip:
            continue
        if key not in new:
            out.append(f"{where}: {key} missing (was {value!r})")
        elif new[key] != value:
            out.append(f"{where}: {key} = {new[key]!r}, was {value!r}")
    return out


def _keyed(
    rows: Iterable[Mapping[str, Any]], keys: tuple[str, ...]
) -> dict[tuple[Any, ...], Mapping[str, Any]]:
    out: dict[tuple[Any, ...], Mapping[str, Any]] = {}
    for row in rows:
        key = tuple(row[k] for k in keys)
        assert key not in out, f"two rows share {dict(zip(keys, key, strict=True))}"
        out[key] = row
    return out


def _section_differences(
    name: str,
    old_rows: list[dict[str, Any]],
    new_rows: list[dict[str, Any]],
    keys: tuple[str, ...],
    excluded: Iterable[str],
) -> list[str]:
    """Every old row must come back, field for field; new rows the old code lacked are fine."""
    new = _keyed(new_rows, keys)
    out = []
    for key, row in _keyed(old_rows, keys).items():
        where = f"{name} {dict(zip(keys, key, strict=True))}"
        if key not in new:
            out.append(f"{where}: missing")
        else:
            out += _differences(where, row, new[key], excluded)
    return out


def _rebuild(tmp_path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """(committed results.json, results.json as the installed code rebuilds it)."""
    run_dir = _copy_fixture(tmp_path)
    old = _load(run_dir / "results.json")
    build_results(run_dir, leaderboard_dir=tmp_path / "lb")
    return old, _load(run_dir / "results.json")


def test_fixture_is_what_it_claims() -> None:
    """Guards the fixture itself: written by e2e2ab0, every strategy and binning present."""
    config = _load(FIXTURE / "config.json")
    assert config["git_commit"].startswith("e2e2ab0")
    assert config["ttc_eval_version"] == "0.1.0"
    results = _load(FIXTURE / "results.json")
    assert results["run_id"] == RUN_ID
    assert {r["strategy"] for r in results["rows"]} == {
        "greedy",
        "majority",
        "best_of_n",
        "revisions",
        "coverage",
    }
    assert {r["label_kind"] for r in results["rows"]} == {"all", "oracle", "predicted"}
    assert results["n_problems"] == 10


def test_legacy_rows_rebuild_to_the_same_numbers(tmp_path: Path) -> None:
    old, new = _rebuild(tmp_path)
    diffs = _differences("results", old, new, EXCLUDED_TOP_FIELDS)
    diffs += _section_differences("row", old["rows"], new["rows"], ROW_KEYS, EXCLUDED_ROW_FIELDS)
    assert not diffs, "\n".join(diffs)
    assert new["n_problems"] == old["n_problems"] == 10


def test_legacy_compute_optimal_and_difficulty_rebuild_unchanged(tmp_path: Path) -> None:
    old, new = _rebuild(tmp_path)
    diffs = _section_differences(
        "compute_optimal", old["compute_optimal"], new["compute_optimal"], OPTIMAL_KEYS, ()
    )
    diffs += _differences(
        "difficulty", old["difficulty"], new["difficulty"], EXCLUDED_DIFFICULTY_FIELDS
    )
    # Question by question, so that a failure names the question and the field.
    for qid, bins in old["difficulty"]["questions"].items():
        diffs += _differences(
            f"difficulty {qid}", bins, new["difficulty"]["questions"].get(qid, {}), ()
        )
    assert not diffs, "\n".join(diffs)


def test_legacy_compute_totals_rebuild_unchanged(tmp_path: Path) -> None:
    """Samples and tokens spent, as results.json's compute and flops sections state them."""
    old, new = _rebuild(tmp_path)
    diffs = _differences("compute", old["compute"], new.get("compute", {}), ())
    diffs += _differences("flops", old["flops"], new.get("flops", {}), EXCLUDED_FLOPS_FIELDS)
    assert not diffs, "\n".join(diffs)


def test_report_command_reads_the_legacy_run(tmp_path: Path) -> None:
    run_dir = _copy_fixture(tmp_path)
    old = _load(run_dir / "results.json")
    # `report` writes the leaderboard where the run recorded it, an absolute path on the
    # machine that wrote the fixture; point it into tmp_path (no other key is touched).
    record = _load(run_dir / "config.json")
    record["config"]["leaderboard_dir"] = str(tmp_path / "lb")
    (run_dir / "config.json").write_text(json.dumps(record, indent=2) + "\n")
    done = subprocess.run(
        [sys.executable, "-m", "ttc_eval.cli", "report", str(run_dir)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "lb" / "arith.csv").is_file()
    new = _load(run_dir / "results.json")
    diffs = _section_differences("row", old["rows"], new["rows"], ROW_KEYS, EXCLUDED_ROW_FIELDS)
    assert not diffs, "\n".join(diffs)
