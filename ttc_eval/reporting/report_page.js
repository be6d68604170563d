const D = JSON.parse(document.getElementById('data').textContent);
const $ = id => document.getElementById(id);
const esc = s => String(s ?? '').replace(/[&<>"]/g, c => ({'&':'&amp;','<':'&lt;','>':'&gt;','"':'&quot;'}[c]));
const fmt = v => typeof v !== 'number' ? esc(v) : Number.isInteger(v) ? String(v)
  : Math.abs(v) < 1e-3 ? v.toExponential(2) : v.toFixed(3);

function table(el, headers, rows) {
  el.innerHTML = '<thead><tr>' + headers.map((h, i) => `<th data-i="${i}">${esc(h)}</th>`).join('')
    + '</tr></thead><tbody>' + rows.map(r => '<tr>' + r.map(c => `<td>${fmt(c)}</td>`).join('')
    + '</tr>').join('') + '</tbody>';
  el.querySelectorAll('th').forEach(th => th.onclick = () => {
    // A first click sorts up, a second on the same column down.
    const again = el.dataset.sortCol === th.dataset.i && el.dataset.sortDir === '1';
    el.dataset.sortCol = th.dataset.i;
    el.dataset.sortDir = again ? '-1' : '1';
    sortRows(el);
  });
  if (el.dataset.sortCol) sortRows(el);  // a redrawn table keeps the order the reader chose
}
function sortRows(el) {
  const i = +el.dataset.sortCol, dir = +el.dataset.sortDir;
  const body = el.tBodies[0], rows = [...body.rows];
  const key = r => { const t = r.cells[i].textContent, n = parseFloat(t); return isNaN(n) ? t : n; };
  rows.sort((a, b) => { const x = key(a), y = key(b); return (x < y ? -1 : x > y ? 1 : 0) * dir; });
  rows.forEach(r => body.appendChild(r));
  el.querySelectorAll('th').forEach(th => th.toggleAttribute('aria-sort', false));
  el.querySelector(`th[data-i="${i}"]`)?.setAttribute('aria-sort', dir === 1 ? 'ascending' : 'descending');
}

// -- run, tables, figures -------------------------------------------------------------------
$('title').textContent = 'ttc-eval run ' + D.run.run_id;
$('subtitle').textContent = `${D.run.task} \u00b7 ${D.run.model} \u00b7 backend ${D.run.backend} \u00b7 verifier ${D.run.verifier ?? 'none'} \u00b7 ${D.run.n_problems} questions`;
const versions = ['task_version', 'grader_version', 'verifier_version', 'backend_version',
  'ttc_eval_version'].map(k => [k, D.run[k] ?? '']);
table($('settings-table'), ['setting', 'value'], versions.concat(Object.entries(D.run.settings)
  .map(([k, v]) => [k, typeof v === 'object' || typeof v === 'string' ? JSON.stringify(v) : v])));
const groups = [...new Set(D.rows.map(r => r.group))];
$('row-group').innerHTML = groups.map(g => `<option>${esc(g)}</option>`).join('');
function showRows() {
  const g = $('row-group').value;
  table($('rows'), ['configuration', 'budget', 'shape', 'questions', 'accuracy', 'CI low', 'CI high',
    'generated tokens / question', 'FLOPs / question'],
    D.rows.filter(r => r.group === g).map(r => [r.config, r.budget, r.shape ?? '', r.n_problems,
      r.accuracy, r.ci_low, r.ci_high, r.tokens, r.flops ?? '']));
}
$('row-group').onchange = showRows; showRows();
$('optimal-note').textContent = D.optimal_note || '';
if (D.optimal.length) {
  // Every scalar column any row has (a first row's null must not drop a column).
  const keys = [...new Set(D.optimal.flatMap(o => Object.keys(o)
    .filter(k => o[k] === null || typeof o[k] !== 'object')))];
  table($('optimal-table'), keys, D.optimal.map(o => keys.map(k => o[k] ?? '')));
} else { $('optimal-table').outerHTML = '<p>none (no difficulty bins, or one configuration)</p>'; }
$('figure-list').innerHTML = Object.entries(D.figures).map(([n, uri]) =>
  `<figure><img alt="${esc(n)}" src="${uri}"><figcaption>${esc(n)}</figcaption></figure>`).join('');

// -- the question browser -------------------------------------------------------------------
const Q = D.questions;
const groupNames = ['all', ...[...new Set(Q.flatMap(q =>
  Object.entries(q.groups).map(([k, v]) => `${k}=${v}`)))].sort()];
const option = v => `<option value="${esc(v)}">${esc(v)}</option>`;
$('f-group').innerHTML = groupNames.map(option).join('');
$('f-config').innerHTML = D.configs.map(c => option(c.label)).join('');
function budgetsOf() {
  const c = D.configs.find(c => c.label === $('f-config').value);
  return c ? c.budgets : [];
}
function fillBudgets() { $('f-budget').innerHTML = budgetsOf().map(option).join(''); }
function accuracy(q) { return (q.accuracy[$('f-config').value] || {})[$('f-budget').value]; }
function shown() {
  const g = $('f-group').value, v = $('f-verdict').value, t = $('f-text').value.toLowerCase();
  return Q.filter(q => {
    if (g !== 'all' && !Object.entries(q.groups).some(([k, x]) => `${k}=${x}` === g)) return false;
    const a = accuracy(q);
    if (v === 'correct' && !(a > 0)) return false;
    if (v === 'incorrect' && !(a < 1)) return false;
    return !t || q.id.toLowerCase().includes(t) || (q.text || '').toLowerCase().includes(t);
  });
}
function list() {
  const qs = shown();
  $('q-count').textContent = `${qs.length} of ${Q.length} questions`;
  $('q-list').innerHTML = qs.map(q => {
    const a = accuracy(q);
    return `<li data-id="${esc(q.id)}"><span class="mono">${esc(q.id)}</span> `
      + `<span class="${a === undefined ? '' : a >= 1 ? 'ok' : a <= 0 ? 'bad' : ''}">${a === undefined ? '' : fmt(a)}</span> `
      + `<small>${esc((q.text || '').slice(0, 80))}</small></li>`;
  }).join('');
  $('q-list').querySelectorAll('li').forEach(li => li.onclick = () => openQuestion(li.dataset.id));
}
let opened = null;
function refresh() { list(); if (opened !== null) openQuestion(opened); }
['f-group', 'f-verdict', 'f-budget'].forEach(id => $(id).onchange = refresh);
$('f-config').onchange = () => { fillBudgets(); refresh(); };
$('f-text').oninput = list;
fillBudgets(); list();

function color(score) {
  if (score === null || score === undefined) return '#ccc';
  const s = Math.max(0, Math.min(1, score));
  return `hsl(${Math.round(120 * s)},70%,45%)`;
}
function sampleHtml(c, picked) {
  const steps = c.steps;
  // Scores color their steps when there is one per step; otherwise they are listed.
  const perStep = c.scores && c.scores.length === steps.length;
  const body = steps.map((s, i) => {
    const sc = perStep ? c.scores[i] : null;
    return `<div class="step" style="border-left-color:${color(sc)}" title="step ${i + 1}`
      + `${sc === null || sc === undefined ? '' : ': score ' + sc.toFixed(3)}">${esc(s)}</div>`;
  }).join('');
  const verdict = c.correct === null ? '' : c.correct ? '<span class="ok">right</span>' : '<span class="bad">wrong</span>';
  return `<div class="sample${picked ? ' picked' : ''}" data-index="${c.index}"><b>#${c.index}</b> `
    + `answer <span class="mono answer">${esc(c.answer ?? '(none)')}</span> ${verdict} `
    + `<small>${fmt(c.tokens)} tokens${c.thinking_closed === false ? ', thinking never closed' : ''}`
    + `${c.scores && !perStep ? ', scores ' + esc(c.scores.map(x => x === null ? 'null' : x.toFixed(3)).join(' ')) : ''}</small>`
    + `<details><summary>text (${steps.length} steps)</summary>${body}</details></div>`;
}
// A search's tree, round by round: every beam grown in the round, what became of it (kept for
// the next round with its children, pruned by the verifier, or finished: a candidate), its
// parent (a kept beam of the round before, named round.place) and score. A pruned beam whose
// lookahead rollout was right is a correct path the search cut.
function searchTree(t) {
  const verdict = p => p.correct === undefined ? '' : p.correct
    ? '<span class="ok">right: a correct path was pruned</span>' : '<span class="bad">wrong</span>';
  // This question's rounds (a chunk's other questions may have searched longer).
  let h = `<h4>search tree: ${fmt(t.tree.length)} rounds</h4><details open><summary>every beam, round by round</summary>`
    + '<table class="tree"><tr><th>round</th><th>beam</th><th>from</th><th>score</th><th>tokens</th>'
    + '<th>what became of it</th><th>rollout answer</th></tr>';
  const from = (r, b) => b.from === undefined || b.from < 0 ? 'question' : `${r - 1}.${b.from}`;
  const row = (r, name, b, fate, what, extra) => `<tr data-round="${r}" data-fate="${fate}">`
    + `<td>${fmt(r)}</td><td class="mono">${name}</td><td class="mono">${from(r, b)}</td>`
    + `<td>${fmt(b.score)}</td><td>${fmt(b.tokens)}</td><td>${what}</td><td class="mono">${extra}</td></tr>`;
  for (const level of t.tree) {
    const r = level.round;
    h += level.kept.map((b, i) => row(r, `${r}.${i}`, b, 'kept', `kept (${fmt(b.children)} children)`, '')).join('')
      + level.finished.map(b => row(r, '', b, 'finished', `finished: candidate #${fmt(b.candidate)}`, '')).join('')
      + (level.unfinished || []).map(b => row(r, '', b, 'cut', `cut at the round cap: candidate #${fmt(b.candidate)}`, '')).join('')
      + (t.pruned || []).filter(p => p.round === r).map(p => row(r, '', p, 'pruned', 'pruned',
        `${esc(p.answer ?? '')} ${verdict(p)}`)).join('');
  }
  return h + '</table></details>';
}
function openQuestion(id) {
  opened = id;
  document.querySelectorAll('#q-list li').forEach(li => li.classList.toggle('open', li.dataset.id === id));
  // A question's samples are parsed only now, from their own element.
  const q = Q.find(x => x.id === id), d = JSON.parse($(D.detail_ids[id]).textContent);
  let h = `<h3 class="mono">${esc(id)}</h3><p id="qtext">${esc(q.text || '(question text not available)')}</p>`
    + `<p>gold answer: <span class="mono" id="gold">${esc(q.gold ?? '(not available)')}</span></p>`;
  const cfg = $('f-config').value, b = $('f-budget').value;
  // Columns, one entry per group: chosen sample, its answer, right?, samples read (a count
  // from the group's first sample, or the read samples as spans), the trace it is in (one
  // for every group, or one each).
  const c = (d.picks[cfg] || {})[b], size = Number(b);
  const span = (g, n) => n === 1 ? String(g * size) : `${g * size}-${g * size + n - 1}`;
  const picks = c ? c.index.map((index, g) => ({
    index, answer: c.answer[g], correct: c.correct[g],
    read: typeof c.read[g] === 'number' ? span(g, c.read[g]) : c.read[g],
    trace: Array.isArray(c.trace) ? c.trace[g] : c.trace,
  })) : [];
  h += `<h4>${esc(cfg)} at budget ${esc(b)}: the sample chosen in each disjoint group`
    + ` (the first ${D.page_groups} at most)</h4>`
    + (picks.length ? '' : '<p>none: this configuration chooses no sample (coverage is an estimate)</p>')
    + `<table id="picks"><tr><th>group</th><th>read</th><th>chosen sample</th><th>answer</th><th>verdict</th></tr>`
    + picks.map((p, g) => `<tr data-group="${g}"><td>${g}</td><td class="mono">${esc(p.read)}</td>`
      + `<td class="mono pick">${p.index === null ? '(none)' : fmt(p.index)}</td><td class="mono">${esc(p.answer ?? '')}</td>`
      + `<td>${p.correct ? '<span class="ok">right</span>' : '<span class="bad">wrong</span>'}</td></tr>`).join('')
    + '</table>';
  for (const t of d.traces) {
    // The samples come as columns (parsed afresh at each opening); one object per sample.
    const cols = t.candidates;
    const samples = cols.index.map((index, i) => ({
      index, answer: cols.answer[i], correct: cols.correct[i], tokens: cols.tokens[i],
      steps: cols.steps[i], scores: cols.scores[i], thinking_closed: cols.thinking_closed[i],
    }));
    // Highlighted: the samples chosen in this trace (not same-numbered ones in another).
    const chosen = new Set(picks.filter(p => p.trace === t.expansion).map(p => p.index));
    h += `<h4 class="mono">${esc(t.expansion)}</h4>`;
    if (t.votes) {
      h += '<table class="votes"><tr><th>budget</th><th>votes per answer (first group of that many samples)</th></tr>'
        + Object.entries(t.votes).map(([bb, v]) => `<tr data-budget="${esc(bb)}"><td>${esc(bb)}</td><td class="mono">`
          + v.map(([a, n]) => `<span class="vote" data-answer="${esc(a)}" data-n="${fmt(n)}">${esc(a)}: ${fmt(n)}</span>`).join(', ')
          + '</td></tr>').join('') + '</table>';
    }
    if (t.chains) {
      h += `<p>${fmt(t.chains)} chains x ${fmt(t.length)} attempts, each chain's attempts in order:</p>`;
      for (let c = 0; c < t.chains; c++) {
        h += `<details><summary>chain ${c}</summary>` + samples.slice(c * t.length, (c + 1) * t.length)
          .map(x => sampleHtml(x, chosen.has(x.index))).join('') + '</details>';
      }
    } else {
      h += samples.map(x => sampleHtml(x, chosen.has(x.index))).join('');
    }
    if (t.tree) {
      h += searchTree(t);
    } else if (t.pruned && t.pruned.length) {
      // A search stored before its trees were: its pruned beams only.
      h += `<h4>search: ${fmt(t.rounds)} rounds; beams pruned per round</h4><table class="pruned"><tr><th>round</th>`
        + '<th>score</th><th>tokens</th><th>rollout answer</th><th>would have been</th></tr>'
        + t.pruned.map(p => `<tr><td>${fmt(p.round)}</td><td>${fmt(p.score)}</td><td>${fmt(p.tokens)}</td>`
          + `<td class="mono">${esc(p.answer ?? '')}</td><td>${p.correct === undefined ? '' : p.correct
            ? '<span class="ok">right: a correct path was pruned</span>' : '<span class="bad">wrong</span>'}</td></tr>`).join('')
        + '</table>';
    }
  }
  $('q-detail').innerHTML = h;
}
