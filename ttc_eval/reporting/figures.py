"""PNG figures (matplotlib, imported only here): accuracy against budget per bin, the
compute-optimal curve against the baseline, the revision ratio sweep, the FLOPs comparison."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from ttc_eval._forked import fork_map


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # files only, never a window
    import matplotlib.pyplot as plt

    return plt


def _natural(v: str) -> tuple[int, float | str]:
    try:
        return (0, float(v))
    except ValueError:
        return (1, v)


def _panels(plt: Any, n: int) -> tuple[Any, list[Any]]:
    cols = min(n, 3)
    nrows = math.ceil(n / cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(4.2 * cols, 3.4 * nrows), squeeze=False)
    flat = [ax for row in axes for ax in row]
    for ax in flat[n:]:
        ax.set_visible(False)
    # 20 distinct colours and alternating line styles: runs often have more than 10 lines.
    colors = plt.get_cmap("tab20").colors
    styles = ["-", "--", ":", "-."]
    for ax in flat[:n]:
        ax.set_prop_cycle(
            color=[colors[i % 20] for i in range(40)],
            linestyle=[styles[(i // 20 + i) % 4] for i in range(40)],
        )
    return fig, flat[:n]


def _save(fig: Any, axes: Sequence[Any], path: Path) -> None:
    """One legend for all panels, below them, so it never hides a curve."""
    handles, labels = axes[0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="lower center", ncol=2, fontsize=7, frameon=False)
        rows = math.ceil(len(handles) / 2)
        fig.tight_layout(rect=(0, min(0.5, 0.03 * rows + 0.02), 1, 1))
    else:
        fig.tight_layout()
    fig.savefig(path, dpi=110)


def _log2_axis(ax: Any, budgets: Sequence[int]) -> None:
    ax.set_xscale("log", base=2)
    ax.set_xticks(list(budgets))
    ax.set_xticklabels([str(b) for b in budgets])
    ax.set_xlabel("generation budget N")


def _per_bin(
    rows: Sequence[dict[str, Any]],
    kind_key: str,
    bin_key: str,
    kind: str,
    path: Path,
    draw: Callable[[Any, Any, list[dict[str, Any]]], None],
) -> bool:
    """One accuracy-against-budget panel per bin of ``kind`` (rows whose ``kind_key`` is
    ``kind``, grouped by ``bin_key``); ``draw(ax, bin, rows of the bin)`` draws a panel's
    lines and title. False (no file) when no row is of ``kind``."""
    mine = [r for r in rows if r[kind_key] == kind]
    if not mine:
        return False
    plt = _pyplot()
    values = sorted({r[bin_key] for r in mine}, key=_natural)
    fig, axes = _panels(plt, len(values))
    budgets = sorted({r["budget"] for r in mine})
    for ax, value in zip(axes, values, strict=True):
        draw(ax, value, [r for r in mine if r[bin_key] == value])
        _log2_axis(ax, budgets)
        ax.set_ylabel("accuracy")
        ax.set_ylim(-0.02, 1.02)
    _save(fig, axes, path)
    plt.close(fig)
    return True


def accuracy_by_budget(rows: Sequence[dict[str, Any]], kind: str, path: Path) -> bool:
    """One panel per bin of ``kind`` (or one for all questions), one line per
    configuration, 95% CI bands."""

    def draw(ax: Any, value: Any, sub: list[dict[str, Any]]) -> None:
        for config in sorted({r["config"] for r in sub}):
            line = sorted((r for r in sub if r["config"] == config), key=lambda r: r["budget"])
            xs = [r["budget"] for r in line]
            ax.plot(xs, [r["accuracy"] for r in line], marker="o", ms=3, label=config)
            ax.fill_between(
                xs, [r["ci_low"] for r in line], [r["ci_high"] for r in line], alpha=0.15
            )
        n = sub[0]["n_problems"]
        ax.set_title(f"{kind} = {value} (n={n})" if kind != "all" else f"all questions (n={n})")

    return _per_bin(rows, "label_kind", "label", kind, path, draw)


def optimal_vs_baseline(optimal: Sequence[dict[str, Any]], kind: str, path: Path) -> bool:
    """Per bin: the cross-validated compute-optimal accuracy against the baseline's."""

    def draw(ax: Any, value: Any, sub: list[dict[str, Any]]) -> None:
        line = sorted(sub, key=lambda r: r["budget"])
        xs = [r["budget"] for r in line]
        ax.plot(xs, [r["optimal_accuracy"] for r in line], marker="o", label="compute-optimal")
        ax.plot(xs, [r["baseline_accuracy"] for r in line], marker="s", label=line[0]["baseline"])
        ax.set_title(f"{kind} bin {value}" if kind != "all" else "all questions")

    return _per_bin(optimal, "bin_kind", "bin", kind, path, draw)


def revision_sweep(rows: Sequence[dict[str, Any]], path: Path) -> bool:
    """Accuracy against the number of sequential attempts per chain, one line per budget
    and selection rule (all questions)."""
    mine = [r for r in rows if r.get("shape") and r["label_kind"] == "all"]
    if not mine:
        return False
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    keys = sorted({(r["strategy_args"].get("select", ""), r["budget"]) for r in mine})
    for select, budget in keys:
        line = sorted(
            (
                r
                for r in mine
                if r["budget"] == budget and r["strategy_args"].get("select", "") == select
            ),
            key=lambda r: int(r["shape"].split("x")[1]),
        )
        xs = [int(r["shape"].split("x")[1]) for r in line]
        ax.plot(xs, [r["accuracy"] for r in line], marker="o", label=f"{select}, N={budget}")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("sequential attempts per chain (parallel = N / sequential)")
    ax.set_ylabel("accuracy")
    ax.set_ylim(-0.02, 1.02)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def flops_comparison(table: Sequence[dict[str, Any]], path: Path) -> bool:
    """compare-flops: per ratio R, the small model's matched accuracy against the larger
    model's, per bin, with the difference's CI as error bars."""
    if not table:
        return False
    plt = _pyplot()
    ratios = sorted({r["R"] for r in table})
    fig, axes = _panels(plt, len(ratios))
    for ax, ratio in zip(axes, ratios, strict=True):
        sub = [r for r in table if r["R"] == ratio]
        bins = [str(r["bin"]) for r in sub]
        diffs = [r["difference"] for r in sub]
        err = [
            [d - r["ci_low"] for d, r in zip(diffs, sub, strict=True)],
            [r["ci_high"] - d for d, r in zip(diffs, sub, strict=True)],
        ]
        ax.bar(
            bins,
            diffs,
            yerr=err,
            capsize=3,
            color=["tab:green" if d > 0 else "tab:red" for d in diffs],
        )
        ax.axhline(0, color="black", lw=0.8)
        ax.set_title(f"R = {ratio} (K = {sub[0]['K']:.1f})")
        ax.set_xlabel("bin")
        ax.set_ylabel("small + TTC minus large")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def frontier(
    rows: Sequence[dict[str, Any]],
    front: Sequence[dict[str, Any]],
    kind: str,
    axis: str,
    path: Path,
) -> bool:
    """One panel per bin of ``kind``: accuracy against measured mean cost per question
    (``axis``: generated tokens or FLOPs), one line per configuration through its budgets,
    and the Pareto frontier across them drawn over the lines. False when no row of ``kind``
    has that cost."""
    from ttc_eval.analysis.frontier import cost_of

    # A log axis needs a positive cost (imported dumps record no token counts).
    mine = [r for r in rows if r["label_kind"] == kind and (cost_of(r, axis) or 0) > 0]
    if not mine:
        return False
    plt = _pyplot()
    values = sorted({r["label"] for r in mine}, key=_natural)
    fig, axes = _panels(plt, len(values))
    for ax, value in zip(axes, values, strict=True):
        sub = [r for r in mine if r["label"] == value]
        for config in sorted({r["config"] for r in sub}):
            line = sorted((r for r in sub if r["config"] == config), key=lambda r: r["budget"])
            xs = [cost_of(r, axis) for r in line]
            ax.plot(xs, [r["accuracy"] for r in line], marker="o", ms=3, label=config)
        edge = sorted(
            (f for f in front if (f["label_kind"], f["label"]) == (kind, value)),
            key=lambda f: f["cost"],
        )
        if edge:
            ax.step(
                [f["cost"] for f in edge],
                [f["accuracy"] for f in edge],
                where="post",
                color="black",
                linewidth=1.6,
                linestyle="-",
                alpha=0.6,
                label="Pareto frontier",
            )
        ax.set_xscale("log")
        ax.set_xlabel("generated tokens per question" if axis == "tokens" else "FLOPs per question")
        ax.set_ylabel("accuracy")
        ax.set_ylim(-0.02, 1.02)
        n = sub[0]["n_problems"]
        ax.set_title(f"{kind} = {value} (n={n})" if kind != "all" else f"all questions (n={n})")
    _save(fig, axes, path)
    plt.close(fig)
    return True


def write_figures(
    rows: Sequence[dict[str, Any]],
    optimal: Sequence[dict[str, Any]],
    out: Path,
    meanwhile: Callable[[], object] | None = None,
) -> list[Path]:
    """All figures of a run into ``out`` (``meanwhile()`` run while they are drawn:
    :func:`draw_all`); returns the files written."""
    from ttc_eval.analysis.frontier import AXES, frontiers

    # Each figure's file and the call that draws it (False: nothing to draw).
    jobs: list[tuple[Path, Callable[..., bool], tuple[Any, ...]]] = []
    for kind in sorted({r["label_kind"] for r in rows}):
        path = out / f"accuracy_by_budget_{kind}.png"
        jobs.append((path, accuracy_by_budget, (rows, kind, path)))
    for kind in sorted({r["bin_kind"] for r in optimal}):
        path = out / f"compute_optimal_{kind}.png"
        jobs.append((path, optimal_vs_baseline, (optimal, kind, path)))
    path = out / "revisions_ratio.png"
    jobs.append((path, revision_sweep, (rows, path)))
    for axis in AXES:
        front = frontiers(rows, axis)
        for kind in ("all", "oracle"):
            path = out / f"frontier_{axis}_{kind}.png"
            jobs.append((path, frontier, (rows, front, kind, axis, path)))
    drawn = draw_all([(draw, args) for _, draw, args in jobs], meanwhile)
    return [path for (path, _, _), done in zip(jobs, drawn, strict=True) if done]


_T = TypeVar("_T")


def draw_all(
    jobs: Sequence[tuple[Callable[..., _T], tuple[Any, ...]]],
    meanwhile: Callable[[], object] | None = None,
) -> list[_T]:
    """``draw(*args)`` of every job (each draws one figure into its own file), with their
    results in order, and ``meanwhile()`` run here while they are drawn. Matplotlib spends
    seconds of CPU per report in layout and rendering, one figure at a time: with several
    cores they are drawn side by side in forked processes (:func:`~ttc_eval._forked.fork_map`),
    which inherit matplotlib, imported here first."""
    if len(jobs) > 1:
        _pyplot()
    return fork_map(jobs, meanwhile)


def policy_vs_baselines(entries: Sequence[dict[str, Any]], path: Path) -> bool:
    """One panel per policy configuration: accuracy against measured generated tokens per
    question, through its budgets, for the policy and each side it is compared with (the
    oracle-bin in-sample bound dashed)."""
    labels = sorted({e["policy"] for e in entries})
    if not labels:
        return False
    plt = _pyplot()
    fig, axes = _panels(plt, len(labels))
    for ax, label in zip(axes, labels, strict=True):
        mine = sorted((e for e in entries if e["policy"] == label), key=lambda e: e["budget"])
        for kind in dict.fromkeys(s["kind"] for e in mine for s in e["sides"]):
            pts = [
                (s["generated_tokens"], s["accuracy"])
                for e in mine
                for s in e["sides"]
                if s["kind"] == kind and s["generated_tokens"] > 0
            ]
            if not pts:
                continue
            xs, ys = zip(*pts, strict=True)
            style = {"linestyle": "--", "color": "grey"} if kind == "oracle_bins" else {}
            name = {"oracle_bins": "oracle bins (in-sample bound)", "best_single": "best single"}
            ax.plot(xs, ys, marker="o", ms=3, label=name.get(kind, kind), **style)
        ax.set_xscale("log")
        ax.set_xlabel("generated tokens per question (measured)")
        ax.set_ylabel("accuracy")
        ax.set_title(label if len(label) < 60 else label[:57] + "...", fontsize=8)
    _save(fig, axes, path)
    plt.close(fig)
    return True


def reliability_diagrams(calibrations: Sequence[dict[str, Any]], path: Path) -> bool:
    """One reliability diagram per step-score aggregation (``calibrations``: verifier.json's
    calibration entries with an ECE): accuracy of each score bin against its mean score, the
    diagonal of perfect calibration, and each bin's share of the samples as grey bars. False
    (no file) when there is none."""
    if not calibrations:
        return False
    plt = _pyplot()
    fig, axes = _panels(plt, len(calibrations))
    for ax, c in zip(axes, calibrations, strict=True):
        full = [b for b in c["bins"] if b["count"]]
        total = sum(b["count"] for b in full) or 1
        # Bin shares behind the points, so an empty-looking point is seen to be one sample.
        ax.bar(
            [(b["low"] + b["high"]) / 2 for b in full],
            [b["count"] / total for b in full],
            width=[b["high"] - b["low"] for b in full],
            color="lightgrey",
            edgecolor="grey",
            label="share of samples",
        )
        ax.plot([0, 1], [0, 1], color="black", lw=0.8, linestyle=":", label="perfect calibration")
        ax.plot(
            [b["mean_score"] for b in full],
            [b["accuracy"] for b in full],
            marker="o",
            color="tab:blue",
            linestyle="-",
            label="accuracy of the bin",
        )
        ax.set_xlim(0, 1)
        ax.set_ylim(-0.02, 1.02)
        ax.set_xlabel("verifier score (mean in bin)")
        ax.set_ylabel("fraction correct")
        ax.set_title(f"aggregation={c['aggregation']}: ECE {c['ece']:.3f} (n={c['n_samples']})")
    _save(fig, axes, path)
    plt.close(fig)
    return True


_SELECTION_STYLE = {
    "majority": {"label": "majority", "color": "tab:orange"},
    "weighted": {"label": "best-of-N weighted", "color": "tab:blue"},
    "naive": {"label": "best-of-N naive", "color": "tab:green"},
    "oracle": {"label": "oracle (same groups)", "color": "grey", "linestyle": ":"},
}


def overoptimization_curves(panels: Sequence[dict[str, Any]], path: Path) -> bool:
    """One panel per group (``title``, ``budgets``, ``lines``: accuracy per selection,
    ``onsets``: per guided mode, the budget from which it stays below majority): accuracy
    against N, each onset marked by a dashed vertical line of its mode's colour. False (no
    file) when no panel has budgets."""
    panels = [p for p in panels if p["budgets"]]
    if not panels:
        return False
    plt = _pyplot()
    fig, axes = _panels(plt, len(panels))
    for ax, p in zip(axes, panels, strict=True):
        for name, ys in p["lines"].items():
            style = {"linestyle": "-", **_SELECTION_STYLE.get(name, {"label": name})}
            ax.plot(p["budgets"], ys, marker="o", ms=3, **style)
        for mode, onset in p["onsets"].items():
            if onset is not None:
                color = _SELECTION_STYLE.get(mode, {}).get("color", "red")
                # Named on the line itself: the shared legend is read from the first panel.
                ax.axvline(onset, color=color, linestyle="--", lw=1)
                ax.text(
                    onset,
                    0.02,
                    f" {mode} < majority",
                    color=color,
                    fontsize=7,
                    rotation=90,
                    va="bottom",
                )
        _log2_axis(ax, p["budgets"])
        ax.set_ylabel("accuracy")
        ax.set_ylim(-0.02, 1.02)
        ax.set_title(p["title"])
    _save(fig, axes, path)
    plt.close(fig)
    return True
