#!/usr/bin/env bash
# The README's "Learn" measurement: on the default model, train a PRM and a reviser on the
# calibration half of arith_120, and evaluate them against the untrained verifiers and the
# untuned policy on the test half (disjoint questions). Every step's wall time goes to
# OUT/times.tsv; the tables come from the runs' results.json (benchmarks/learn_table.py).
#
#   bash benchmarks/learn_arith.sh [OUT]        (default OUT: learn-arith)
#
# CPU only: 92 min on 2 cores, measured 2026-11-22 with the sample pools already in the
# generation cache (OUT/times.tsv has each step). Set TTC_EVAL_CACHE to reuse generations.
set -euo pipefail
OUT=${1:-learn-arith}
TTC=${TTC:-ttc-eval}
mkdir -p "$OUT"
TIMES="$OUT/times.tsv"

step() {
    local name=$1
    shift
    if grep -q "^$name	" "$TIMES" 2>/dev/null; then
        echo "== $name: done before, skipped" >&2
        return
    fi
    echo "== $name: $*" >&2
    local start end
    start=$(date +%s.%N)
    "$@"
    end=$(date +%s.%N)
    printf '%s\t%.1f\n' "$name" "$(echo "$end - $start" | bc)" >> "$TIMES"
}

TRAIN=(--task arith_120 --split calibration)
EVAL=(--task arith_120 --split test --output-dir "$OUT/runs" --leaderboard-dir "$OUT/lb" --quiet)

# Training: a pool of 8 samples per calibration question, step labels from 4 rollouts each.
step prm-data $TTC learn prm-data "${TRAIN[@]}" --per-question 8 --rollouts 4 \
    --output "$OUT/prm-data" --quiet
step prm $TTC learn prm "$OUT/prm-data" --output "$OUT/prm" --quiet
step revision-data $TTC learn revision-data "$OUT/prm-data/pool" --output "$OUT/revision-data"
step reviser $TTC learn reviser "$OUT/revision-data" --output "$OUT/reviser" --quiet

# Verifiers on one pool of 16 samples per test question (generated once, then cached).
for v in logprob self-judge; do
    step "eval-$v" $TTC run "${EVAL[@]}" --strategy majority,best_of_n --budgets 1,2,4,8,16 \
        --verifier "$v" --run-id "verifier-$v"
done
step eval-prm $TTC run "${EVAL[@]}" --strategy majority,best_of_n --budgets 1,2,4,8,16 \
    --verifier qwen-prm --verifier-model "$OUT/prm" --run-id verifier-trained-prm
step eval-beam $TTC run "${EVAL[@]}" --strategy beam_search:width=4 --budgets 4,16 \
    --verifier qwen-prm --verifier-model "$OUT/prm" --run-id beam-trained-prm

# Revisions: one chain of 16 attempts (sequential 1x16) per question, on the first 30 test
# questions, by the untuned policy and by the trained reviser; parallel is majority@16.
for who in untuned trained; do
    role=()
    [ "$who" = trained ] && role=(--revision-model "$OUT/reviser")
    step "eval-revisions-$who" $TTC run "${EVAL[@]}" --limit 30 --budgets 16 \
        --strategy majority,revisions:chains=1:length=16 --verifier none "${role[@]}" \
        --run-id "revisions-$who"
done
cat "$TIMES"
