"""The static site: an index linking 75 pages, one anchor per question, working images, code."""

import html
import re
from html.parser import HTMLParser

from ember.guide.questions import QUESTIONS
from ember.guide.registry import get_experiment


class Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.hrefs, self.imgs, self.ids = [], [], []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "a" and "href" in a:
            self.hrefs.append(a["href"])
        if tag == "img":
            self.imgs.append(a["src"])
        if "id" in a:
            self.ids.append(a["id"])


def parse(path):
    p = Links()
    p.feed(path.read_text())
    return p


def test_index_links_all_75_questions_grouped_in_four_parts(site):
    index = parse(site / "index.html")
    pages = [h for h in index.hrefs if re.fullmatch(r"q\d+\.html", h)]
    assert pages == [f"q{n}.html" for n in range(1, 76)]
    assert [i for i in index.ids if i.startswith("part")] == ["part1", "part2", "part3", "part4"]


def test_every_question_page_exists_with_its_anchor_title_and_answer_reveal(site):
    for q in QUESTIONS:
        page = site / f"q{q.number}.html"
        text = page.read_text()
        assert f"q{q.number}" in parse(page).ids
        assert html.escape(q.title) in text
        assert "<details" in text and "Show answer" in text
        assert html.escape(q.answer[:40]) in text


def test_images_referenced_by_pages_exist_and_are_pngs(site):
    seen = 0
    for page in site.glob("q*.html"):
        for src in parse(page).imgs:
            path = site / src
            assert path.exists(), f"{page.name} links a missing image {src}"
            assert path.read_bytes()[:4] == b"\x89PNG"
            seen += 1
    assert seen >= 2  # the two experiments run for the fixture each drew a figure


def test_a_run_experiment_shows_its_claim_verdict_table_and_source(site):
    exp = get_experiment(7)
    text = (site / "q7.html").read_text()
    assert html.escape(exp.claim[:50]) in text
    assert "claim held" in text
    assert "<table>" in text and "dCE/dlogit" in text
    assert "def cost_functions_compared(quick: bool, out_dir: Path) -&gt; Result:" in text
    assert 'href="q6.html"' in text and 'href="q8.html"' in text


def test_questions_without_a_run_say_so(site):
    assert "No experiment for this question" in (site / "q26.html").read_text()
    assert "Not run in this build" in (site / "q17.html").read_text()
    assert "ember guide 17" in (site / "q17.html").read_text()


def test_index_marks_which_claims_held(site):
    text = (site / "index.html").read_text()
    assert text.count("claim held") == 2
    assert text.count("no experiment") == 75 - len(
        [q for q in QUESTIONS if get_experiment(q.number)]
    )
    assert (site / "style.css").exists() and (site / "results.json").exists()
