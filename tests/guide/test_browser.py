"""The site in a real browser: headless Chromium renders the index and two question pages and every
figure loads (a small script reports each image's natural size into the DOM)."""

import json
import re
import shutil
import subprocess

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="Chromium is not installed (Debian: apt-get install -y chromium)"
)

REPORT = """<script>
window.addEventListener("load", function () {
  var rows = [];
  document.querySelectorAll("img").forEach(function (img) {
    rows.push({src: img.getAttribute("src"), complete: img.complete,
               width: img.naturalWidth, height: img.naturalHeight});
  });
  var pre = document.createElement("pre");
  pre.id = "ember-report";
  pre.textContent = JSON.stringify({title: document.title, images: rows,
                                    links: document.querySelectorAll("a").length});
  document.body.appendChild(pre);
});
</script>"""


def render(page, tmp_path):
    """Copy `page` beside itself with the report script, load it in Chromium, return the report."""
    probe = page.with_name(page.stem + ".probe.html")
    probe.write_text(page.read_text().replace("</body>", REPORT + "</body>"))
    cmd = [
        CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
        "--no-first-run", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}",
        "--virtual-time-budget=10000", "--dump-dom", probe.as_uri(),
    ]  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    probe.unlink()
    match = re.search(r'<pre id="ember-report">(.*?)</pre>', out.stdout, re.S)
    assert match, f"Chromium did not run the page's script; stderr: {out.stderr[-2000:]}"
    return json.loads(match.group(1).replace("&quot;", '"').replace("&amp;", "&"))


def test_index_renders_with_links_to_every_question(site, tmp_path):
    report = render(site / "index.html", tmp_path)
    assert report["title"] == "ember: the living guide"
    assert report["links"] >= 75


@pytest.mark.parametrize("number", [7, 12])
def test_question_page_figures_load(site, tmp_path, number):
    report = render(site / f"q{number}.html", tmp_path)
    assert report["title"].startswith(f"Q{number}.")
    assert report["images"], "the page should show its experiment's figure"
    for img in report["images"]:
        assert img["complete"] and img["width"] > 0 and img["height"] > 0, f"broken image {img}"


def test_a_missing_figure_is_reported_as_broken(site, tmp_path):
    # the probe itself must be able to fail: a page whose image is gone reports width 0
    page = site / "q7.html"
    broken = site / "broken.html"
    broken.write_text(re.sub(r'src="q7/[^"]+"', 'src="q7/absent.png"', page.read_text()))
    report = render(broken, tmp_path)
    assert report["images"] and all(img["width"] == 0 for img in report["images"])
