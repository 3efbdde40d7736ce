"""The static HTML site of the guide: ``index.html`` with the four parts, and one page per question
(``q1.html`` .. ``q75.html``, each with an ``id="qN"`` anchor) holding ember's answer behind a
"show answer" reveal, and the question's experiment: its claim and whether it held, its
figures, its table, and its source code beside the result.

No JavaScript and no external resources: the site opens from the file system in any browser.
"""

from __future__ import annotations

import html
import inspect
import json
import os
import re
import time
from pathlib import Path

from ember.guide.questions import PARTS, QUESTIONS, Question
from ember.guide.registry import Experiment, Result, experiments, format_value

CSS = """
* { box-sizing: border-box; }
body { font: 16px/1.5 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0;
       color: #1d232a; background: #fbfaf7; }
header, main, footer { max-width: 1200px; margin: 0 auto; padding: 0 1.2rem; }
header { padding-top: 1rem; }
nav a { margin-right: 1rem; }
a { color: #a8430f; }
h1 { font-size: 1.6rem; line-height: 1.25; }
h2 { font-size: 1.2rem; margin-top: 2rem; }
.part { color: #6b7280; font-size: .95rem; }
details.answer { background: #fff; border: 1px solid #e3ddd1; border-radius: 6px;
                 padding: .6rem 1rem; margin: 1rem 0; }
details.answer summary { cursor: pointer; font-weight: 600; color: #a8430f; }
.claim { font-size: 1.05rem; border-left: 4px solid #a8430f; padding-left: .8rem; }
.badge { display: inline-block; border-radius: 4px; padding: 0 .45rem; font-size: .8rem;
         font-weight: 600; vertical-align: middle; }
.held { background: #def7e5; color: #11622f; }
.failed { background: #fde2e1; color: #9b1c1c; }
.none { background: #eceae4; color: #555; }
.experiment { display: grid; grid-template-columns: minmax(0, 1fr) minmax(0, 1fr);
              gap: 1.5rem; align-items: start; }
@media (max-width: 900px) { .experiment { grid-template-columns: 1fr; } }
.figures img { max-width: 100%; height: auto; border: 1px solid #e3ddd1; background: #fff;
               margin: .4rem .4rem .4rem 0; vertical-align: top; }
table { border-collapse: collapse; font-size: .85rem; margin: .6rem 0; background: #fff; }
th, td { border: 1px solid #e3ddd1; padding: .2rem .5rem; text-align: right; }
th { background: #f3efe6; }
td.text { text-align: left; }
pre { background: #1f2329; color: #e8e6e3; padding: .8rem; border-radius: 6px;
      overflow-x: auto; font-size: .8rem; line-height: 1.4; }
pre.notes { background: #fff; color: #1d232a; border: 1px solid #e3ddd1; }
ul.checks { padding-left: 1.2rem; }
ol.questions li { margin: .25rem 0; }
.meta { color: #6b7280; font-size: .85rem; }
"""


def _code_spans(text: str) -> str:
    """Escape text, turning `backticked` spans into <code>."""
    parts = re.split(r"`([^`]+)`", text)
    return "".join(
        f"<code>{html.escape(p)}</code>" if i % 2 else html.escape(p) for i, p in enumerate(parts)
    )


def _page(title: str, body: str) -> str:
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{html.escape(title)}</title>\n"
        '<link rel="stylesheet" href="style.css">\n</head>\n<body>\n'
        f'{body}\n<footer><p class="meta">Built by <code>ember guide</code>: every figure '
        "and table on this site was produced by ember itself; rerun one with "
        "<code>ember guide N</code>.</p></footer>\n</body>\n</html>\n"
    )


def _badge(result: Result | None, has_experiment: bool) -> str:
    if not has_experiment:
        return '<span class="badge none">no experiment</span>'
    if result is None:
        return '<span class="badge none">not run</span>'
    if result.passed:
        return '<span class="badge held">claim held</span>'
    if result.error is not None:
        return '<span class="badge failed">experiment failed to run</span>'
    return '<span class="badge failed">claim did not hold</span>'


def _table_html(result: Result) -> str:
    if not result.table:
        return ""
    cols = result.columns()
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in cols)
    rows = []
    for row in result.table:
        cells = []
        for c in cols:
            v = row.get(c, "")
            cls = (
                "" if isinstance(v, (int, float)) and not isinstance(v, bool) else ' class="text"'
            )
            cells.append(f"<td{cls}>{html.escape(format_value(v))}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table>\n<tr>{head}</tr>\n" + "\n".join(rows) + "\n</table>"


def _rel(path, root: Path) -> str:
    return Path(os.path.relpath(Path(path).resolve(), root.resolve())).as_posix()


def _experiment_html(exp: Experiment, result: Result | None, root: Path) -> str:
    out = ['<section class="experiment-block">', "<h2>The experiment</h2>"]
    out.append(f'<p class="claim">{_code_spans(exp.claim)} {_badge(result, True)}</p>')
    checks, figures, left = "", [], ['<div class="result">']
    if result is None:
        left.append(
            f"<p>Not run in this build: <code>ember guide {exp.number}</code> runs it.</p>"
        )
    else:
        if result.error is not None:
            left.append(f'<pre class="notes">{html.escape(result.error)}</pre>')
        if result.checks:
            items = "".join(
                f"<li>{'&#10003;' if c.passed else '&#10007;'} {html.escape(c.description)}"
                + (f' <span class="meta">({html.escape(c.detail)})</span>' if c.detail else "")
                + "</li>"
                for c in result.checks
            )
            checks = f'<ul class="checks">{items}</ul>'
        for fig in result.figures:
            src = html.escape(_rel(fig, root))
            alt = f"figure of question {exp.number}: {html.escape(Path(fig).stem)}"
            figures.append(f'<img src="{src}" alt="{alt}">')
        left.append(_table_html(result))
        if result.notes:
            left.append(f'<pre class="notes">{html.escape(result.notes)}</pre>')
        mode = "quick mode" if result.quick else "full mode"
        left.append(f'<p class="meta">Ran in {result.seconds:.2f} s ({mode}).</p>')
    left.append("</div>")
    try:
        source = exp.source
    except (OSError, TypeError):
        source = "(source not available)"
    module = inspect.getmodule(exp.fn)
    where = module.__name__ if module is not None else "?"
    right = [
        '<div class="code">',
        f'<p class="meta">Source: <code>{html.escape(where)}.{html.escape(exp.name)}</code></p>',
        f"<pre><code>{html.escape(source)}</code></pre>",
        "</div>",
    ]
    out.append(checks)
    if figures:
        out.append('<div class="figures">' + "\n".join(figures) + "</div>")
    out.append('<div class="experiment">' + "\n".join(left + right) + "</div>")
    out.append("</section>")
    return "\n".join(out)


def question_page(q: Question, exp: Experiment | None, result: Result | None, root: Path) -> str:
    """The HTML of one question's page."""
    n = q.number
    nav = ['<a href="index.html">All questions</a>']
    if n > 1:
        nav.append(f'<a href="q{n - 1}.html">&larr; Q{n - 1}</a>')
    if n < len(QUESTIONS):
        nav.append(f'<a href="q{n + 1}.html">Q{n + 1} &rarr;</a>')
    body = [
        "<header><nav>" + " ".join(nav) + "</nav></header>",
        "<main>",
        f'<article id="{q.anchor}">',
        f'<p class="part">Part {q.part}: {html.escape(PARTS[q.part])}</p>',
        f"<h1>{n}. {html.escape(q.title)}</h1>",
        '<details class="answer"><summary>Show answer</summary>',
        f"<p>{_code_spans(q.answer)}</p>",
        "</details>",
    ]
    if exp is not None:
        body.append(_experiment_html(exp, result, root))
    else:
        body.append(
            '<p class="meta">No experiment for this question: its answer is a matter of '
            "definition or practice rather than something a run can show.</p>"
        )
    body += ["</article>", "</main>"]
    return _page(f"Q{n}. {q.title}", "\n".join(body))


def index_page(exps: dict, results: dict) -> str:
    """The HTML of the index: the four parts and a link to every question."""
    n_exp = len(exps)
    held = sum(1 for r in results.values() if r.passed)
    body = [
        "<header><h1>The living guide: 75 questions, answered by experiments</h1>",
        f'<p class="meta">{len(QUESTIONS)} questions, {n_exp} with an experiment; '
        f"{held} of the {len(results)} experiments run in this build held their claim.</p>",
        "<nav>" + " ".join(f'<a href="#part{p}">Part {p}</a>' for p in PARTS) + "</nav>",
        "</header>",
        "<main>",
    ]
    for part, name in PARTS.items():
        body.append(f'<section id="part{part}"><h2>Part {part}: {html.escape(name)}</h2>')
        body.append('<ol class="questions">')
        for q in QUESTIONS:
            if q.part != part:
                continue
            badge = _badge(results.get(q.number), q.number in exps)
            body.append(
                f'<li value="{q.number}"><a href="{q.anchor}.html">{html.escape(q.title)}</a> '
                f"{badge}</li>"
            )
        body.append("</ol></section>")
    body.append("</main>")
    return _page("ember: the living guide", "\n".join(body))


def build_site(
    out_dir="ember-guide",
    quick: bool = False,
    numbers=None,
    log=print,
) -> Path:
    """Run the experiments and write the site into ``out_dir``; returns the path of index.html.

    Args:
        out_dir: the folder to write (created if needed; files of an earlier build are
            overwritten).
        quick: run every experiment in its quick mode (seconds in all, for tests).
        numbers: run only these questions' experiments (default: all); every question still
            gets its page.
        log: called with one line per experiment (None for silence).
    """
    root = Path(out_dir)
    root.mkdir(parents=True, exist_ok=True)
    exps = experiments()
    wanted = sorted(exps) if numbers is None else sorted(int(n) for n in numbers if int(n) in exps)
    results: dict[int, Result] = {}
    start = time.perf_counter()
    for n in wanted:
        result = exps[n].run(quick=quick, out_dir=root / f"q{n}", catch=True)
        results[n] = result
        if log is not None:
            verdict = "held" if result.passed else ("ERROR" if result.error else "FAILED")
            log(f"q{n:<3d} {verdict:6s} {result.seconds:6.2f} s  {exps[n].name}")
    (root / "style.css").write_text(CSS.lstrip())
    for q in QUESTIONS:
        page = question_page(q, exps.get(q.number), results.get(q.number), root)
        (root / f"{q.anchor}.html").write_text(page)
    (root / "index.html").write_text(index_page(exps, results))
    summary = {
        "quick": bool(quick),
        "seconds": time.perf_counter() - start,
        "results": {f"q{n}": r.to_dict() for n, r in results.items()},
    }
    (root / "results.json").write_text(json.dumps(summary, indent=1))
    return root / "index.html"
