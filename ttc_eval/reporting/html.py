"""``report/index.html``: one self-contained page to look at a run (no server, no network).

The page holds its data as JSON in the file, its script and styles inline (kept beside this
module as ``report_page.js`` and ``report_page.css``) and the figures
as data URIs, so it opens from disk and can be mailed around. The run's settings, the
accuracy and compute-optimal tables (sortable) and every figure come first; then a question
browser (filter by difficulty bin or label, by verdict of one configuration at one budget,
and by text). A question's samples are rendered only when it is opened, so that a run of
500 questions x 64 samples stays usable: the gold answer; every sample with its answer,
verdict, token count and steps colored by their verifier scores; the vote totals per answer
at each budget; the sample each configuration chose in each disjoint group; a search's
pruned beams per round; a revision chain's attempts in order.
"""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

HTML_VERSION = "1"
"""Bumped when the page's data or layout changes."""


def figure_uris(report_dir: Path) -> dict[str, str]:
    """Every PNG of the report folder as a data URI, by file name."""
    return {
        p.name: "data:image/png;base64," + base64.b64encode(p.read_bytes()).decode("ascii")
        for p in sorted(report_dir.glob("*.png"))
    }


def render_page(data: Mapping[str, Any]) -> str:
    """The page for ``data`` (:func:`ttc_eval.results.html_data`)."""
    # `</` inside a script's JSON would end the script element early.
    blob = json.dumps(data, separators=(",", ":"), ensure_ascii=False).replace("</", "<\\/")
    title = html.escape(f"ttc-eval: {data['run'].get('run_id', '')}")
    here = resources.files("ttc_eval.reporting")
    return (
        _PAGE.replace("__TITLE__", title)
        .replace("__STYLE__", here.joinpath("report_page.css").read_text(encoding="utf-8"))
        .replace("__SCRIPT__", here.joinpath("report_page.js").read_text(encoding="utf-8"))
        .replace("__DATA__", blob)
    )


def write_page(path: Path, data: Mapping[str, Any]) -> None:
    from ttc_eval._rundir import write_atomic

    write_atomic(path, render_page(data))


def vote_totals(vote_keys: Sequence[str | None]) -> dict[str, int]:
    """Votes per answer among ``vote_keys`` (samples without an answer do not vote), in the
    order answers first appear."""
    out: dict[str, int] = {}
    for k in vote_keys:
        if k is not None:
            out[k] = out.get(k, 0) + 1
    return out


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>__TITLE__</title>
<style>__STYLE__</style></head>
<body>
<header><h1 id="title"></h1><div id="subtitle"></div></header>
<nav><a href="#settings">settings</a> <a href="#accuracy">accuracy</a>
<a href="#optimal">compute-optimal</a> <a href="#figures">figures</a>
<a href="#questions">questions</a></nav>
<section id="settings"><h2>Settings and versions</h2><table id="settings-table"></table></section>
<section id="accuracy"><h2>Accuracy by budget</h2>
<label>questions <select id="row-group"></select></label>
<table id="rows" class="sortable"></table></section>
<section id="optimal"><h2>Compute-optimal choices</h2><div id="optimal-note"></div>
<table id="optimal-table" class="sortable"></table></section>
<section id="figures"><h2>Figures</h2><div id="figure-list"></div></section>
<section id="questions"><h2>Questions</h2>
<div class="filters">
<label>group <select id="f-group"></select></label>
<label>configuration <select id="f-config"></select></label>
<label>budget <select id="f-budget"></select></label>
<label>verdict <select id="f-verdict"><option value="any">any</option>
<option value="correct">correct</option><option value="incorrect">incorrect</option>
</select></label>
<label>search <input id="f-text" type="search" placeholder="question text or id"></label>
<span id="q-count"></span></div>
<div class="browser"><ol id="q-list"></ol><div id="q-detail"><p>Open a question.</p></div>
</div></section>
<script id="data" type="application/json">__DATA__</script>
<script>__SCRIPT__</script>
</body></html>
"""
