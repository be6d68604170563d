"""``report/index.html``: one self-contained page to look at a run (no server, no network).

The page holds its data as JSON in the file, its script and styles inline (kept beside this
module as ``report_page.js`` and ``report_page.css``) and the figures as data URIs, so it
opens from disk and can be mailed around. The run's settings, the accuracy and
compute-optimal tables (sortable) and the figures the report drew come first; then a
question browser (filter by difficulty bin or label, by verdict of one configuration at one
budget, and by text). A question's samples are rendered only when it is opened, so that a
run of 500 questions x 64 samples stays usable: the gold answer; every sample with its
answer, verdict, token count and steps colored by their verifier scores; the vote totals
per answer at each budget; the sample each configuration chose in each disjoint group; a
search's tree, round by round (kept, finished and pruned beams); a revision chain's
attempts in order.
"""

from __future__ import annotations

import base64
import html
import json
import math
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

HTML_VERSION = "2"
"""Bumped when the page's data or layout changes (2: samples and choices as columns, a
search's tree per round, only the figures the report drew, up to 64 groups per budget)."""


def figure_uris(paths: Sequence[Path]) -> dict[str, str]:
    """These PNG files as data URIs, by file name (in name order)."""
    return {
        p.name: "data:image/png;base64," + base64.b64encode(p.read_bytes()).decode("ascii")
        for p in sorted(paths, key=lambda p: p.name)
    }


def embedded_json(value: Any) -> str:
    """``value`` as JSON that is safe inside a ``<script>`` element: ASCII only (any locale
    writes it the same), every ``<`` escaped (no ``</script>`` or ``<!--`` in sample text can
    end or confuse the element), non-finite numbers as null (``JSON.parse`` rejects NaN)."""
    try:
        text = json.dumps(value, separators=(",", ":"), ensure_ascii=True, allow_nan=False)
    except ValueError:  # a NaN or an infinity somewhere (a stored score): walk it once
        text = json.dumps(_finite(value), separators=(",", ":"), ensure_ascii=True)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def render_page(data: Mapping[str, Any]) -> str:
    """The page for ``data`` (:func:`ttc_eval.results.html_data`): its ``details`` (each
    question's samples and choices) go in one element per question, parsed only when the
    question is opened, so that a large run's page loads without parsing them all."""
    head = {k: v for k, v in data.items() if k != "details"}
    details = "".join(
        f'<script type="application/json" id="q-{i}">{embedded_json(d)}</script>\n'
        for i, d in enumerate(data["details"].values())
    )
    head["detail_ids"] = {pid: f"q-{i}" for i, pid in enumerate(data["details"])}
    title = html.escape(f"ttc-eval: {data['run'].get('run_id', '')}")
    here = resources.files("ttc_eval.reporting")
    return (
        _PAGE.replace("__TITLE__", title)
        .replace("__STYLE__", here.joinpath("report_page.css").read_text(encoding="ascii"))
        .replace("__SCRIPT__", here.joinpath("report_page.js").read_text(encoding="ascii"))
        .replace("__DETAILS__", details)
        .replace("__DATA__", embedded_json(head))
    )


def write_page(path: Path, data: Mapping[str, Any]) -> None:
    from ttc_eval._rundir import write_atomic_bytes

    write_atomic_bytes(path, render_page(data).encode("ascii", "xmlcharrefreplace"))


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
<option value="correct">right in some group</option>
<option value="incorrect">wrong in some group</option>
</select></label>
<label>search <input id="f-text" type="search" placeholder="question text or id"></label>
<span id="q-count"></span></div>
<div class="browser"><ol id="q-list"></ol><div id="q-detail"><p>Open a question.</p></div>
</div></section>
<script id="data" type="application/json">__DATA__</script>
__DETAILS__
<script>__SCRIPT__</script>
</body></html>
"""
