"""The review page in a real browser: headless Chromium lays it out at phone and desktop width, and
a script inside the page reports what it sees — every section and chart present, nothing wider
than the viewport (tables scroll inside their own box), chart labels inside their charts — then
prints it to PDF with a page per section.

Chromium is Debian's ``chromium`` package. Without it these tests are skipped, unless
``SALESPROCESS_REQUIRE_BROWSER=1``, which makes them fail.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from salesprocess.report import LANGUAGES, render_html
from test_review import CHARTS, SECTIONS, company  # noqa: F401  (the module's company fixture)

CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-extensions", "--hide-scrollbars", "--mute-audio")

# Runs inside the page (the review in an iframe as wide as the screen under test) and writes what
# it measured into the host page, which --dump-dom prints.
PROBE = r"""
(function () {
  var vw = window.innerWidth, out = {vw: vw, scrollWidth: document.documentElement.scrollWidth,
    overflow: [], sections: {}, charts: {}, chartText: [], heat: null, notes: []};
  function name(el) {
    var c = el.getAttribute('class') || '';
    return el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') + (c ? '.' + c.split(' ').join('.') : '');
  }
  function clipped(el) {  // inside a box that scrolls or clips and itself fits the viewport
    for (var p = el.parentElement; p && p !== document.documentElement; p = p.parentElement) {
      var cs = getComputedStyle(p);
      if (cs.overflowX === 'auto' || cs.overflowX === 'scroll' || cs.overflowX === 'hidden') {
        var r = p.getBoundingClientRect();
        if (r.left >= -0.5 && r.right <= vw + 0.5) return true;
      }
    }
    return false;
  }
  var all = document.body.querySelectorAll('*');
  for (var i = 0; i < all.length; i++) {
    var el = all[i], r = el.getBoundingClientRect();
    if (r.width === 0 && r.height === 0) continue;
    if ((r.right > vw + 0.5 || r.left < -0.5) && !clipped(el))
      out.overflow.push(name(el) + ' ' + Math.round(r.left) + '..' + Math.round(r.right));
  }
  var secs = document.querySelectorAll('section');
  for (var j = 0; j < secs.length; j++) {
    var s = secs[j], sr = s.getBoundingClientRect();
    out.sections[s.id] = {status: s.getAttribute('data-status'), height: Math.round(sr.height),
                          visible: getComputedStyle(s).display !== 'none'};
  }
  var figs = document.querySelectorAll('figure.chart');
  for (var k = 0; k < figs.length; k++) {
    var svg = figs[k].querySelector('svg'), gr = svg.getBoundingClientRect();
    out.charts[figs[k].id] = {width: gr.width, height: gr.height,
      shapes: svg.querySelectorAll('rect,line,polygon,polyline,circle,path').length,
      texts: svg.querySelectorAll('text').length};
    var ts = svg.querySelectorAll('text');
    for (var m = 0; m < ts.length; m++) {
      var tr = ts[m].getBoundingClientRect();
      if (tr.left < gr.left - 1 || tr.right > gr.right + 1 || tr.top < gr.top - 1 || tr.bottom > gr.bottom + 1)
        out.chartText.push(figs[k].id + ': ' + ts[m].textContent);
    }
  }
  var heat = document.getElementById('risk-heat');
  if (heat) {
    var wrap = heat.parentElement, hr = wrap.getBoundingClientRect();
    out.heat = {rows: heat.querySelectorAll('tbody tr').length, scrolls: getComputedStyle(wrap).overflowX,
                fits: hr.right <= vw + 0.5};
  }
  var notes = document.querySelectorAll('.note');
  for (var n = 0; n < notes.length; n++) out.notes.push(notes[n].textContent);
  var pre = parent.document.createElement('pre');
  pre.id = 'probe';
  pre.textContent = JSON.stringify(out);
  parent.document.body.appendChild(pre);
})();
"""


@pytest.fixture(scope="module")
def chromium() -> str:
    path = shutil.which("chromium")
    if path is None:
        why = ("chromium is not installed (Debian: apt-get install -y chromium); "
               "set SALESPROCESS_REQUIRE_BROWSER=1 to make its absence a failure")
        if os.environ.get("SALESPROCESS_REQUIRE_BROWSER") == "1":
            pytest.fail(f"SALESPROCESS_REQUIRE_BROWSER=1 but {why}", pytrace=False)
        pytest.skip(why)
    return path


def _run(chromium: str, tmp: Path, *args: str) -> str:
    profile = tmp / "profile"
    profile.mkdir(exist_ok=True)
    done = subprocess.run([chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
                          capture_output=True, text=True, timeout=180, check=False)
    return done.stdout


def probe(chromium: str, page: str, width: int, tmp: Path) -> dict[str, Any]:
    """Lay ``page`` out ``width`` CSS pixels wide and return what the probe measured."""
    inner = page.replace("</body>", f"<script>{PROBE}</script></body>")
    host = ('<!DOCTYPE html><html><body style="margin:0">'
            f'<iframe style="width:{width}px;height:900px;border:0;display:block" '
            f'srcdoc="{html.escape(inner, quote=True)}"></iframe></body></html>')
    path = tmp / f"host-{width}.html"
    path.write_text(host, encoding="utf-8")
    dom = _run(chromium, tmp, "--window-size=1400,1000", "--dump-dom", path.as_uri())
    m = re.search(r'<pre id="probe">(.*?)</pre>', dom, re.S)
    assert m is not None, f"the probe did not report; chromium printed:\n{dom[:2000]}"
    result: dict[str, Any] = json.loads(html.unescape(m.group(1)))
    return result


@pytest.fixture(scope="module")
def review_pages(company: dict[str, Any]) -> dict[str, str]:  # noqa: F811
    return {lang: render_html(company["review"], lang=lang) for lang in LANGUAGES}


@pytest.mark.parametrize("lang", LANGUAGES)
def test_phone_width_shows_everything_and_overflows_nothing(chromium: str, review_pages: dict[str, str],
                                                           lang: str, tmp_path: Path) -> None:
    seen = probe(chromium, review_pages[lang], 375, tmp_path)
    assert seen["vw"] == 375
    assert seen["scrollWidth"] <= seen["vw"]
    assert seen["overflow"] == []
    assert list(seen["sections"]) == list(SECTIONS)
    for sid, s in seen["sections"].items():
        assert s["visible"], sid
        assert s["height"] > 40, sid
        assert s["status"] in ("ok", "empty"), sid
    assert sorted(seen["charts"]) == sorted(f"{c}-fig" for c in CHARTS)
    for cid, c in seen["charts"].items():
        assert 200 < c["width"] <= 375, cid
        assert c["height"] > 100, cid
        assert c["shapes"] >= 3, cid
        assert c["texts"] >= 3, cid
    assert seen["chartText"] == []
    heat = seen["heat"]
    assert heat is not None
    assert heat["rows"] > 0
    assert heat["scrolls"] == "auto"
    assert heat["fits"]


def test_desktop_width_overflows_nothing(chromium: str, review_pages: dict[str, str], tmp_path: Path) -> None:
    seen = probe(chromium, review_pages["en"], 1280, tmp_path)
    assert seen["vw"] == 1280
    assert seen["scrollWidth"] <= 1280
    assert seen["overflow"] == []
    assert seen["chartText"] == []
    assert all(c["width"] <= 470 for c in seen["charts"].values())  # charts keep a readable size


def test_empty_review_shows_every_note(chromium: str, tmp_path: Path) -> None:
    from salesprocess.review import weekly_review
    from salesprocess.store import MemoryStore

    r = weekly_review(MemoryStore(), "2026-W10")
    seen = probe(chromium, render_html(r, lang="zh"), 375, tmp_path)
    assert seen["overflow"] == []
    assert [seen["sections"][s]["status"] for s in SECTIONS[1:-1]] == ["empty"] * (len(SECTIONS) - 2)
    assert len(seen["notes"]) == len(SECTIONS) - 1  # every data section and the actions say why
    assert seen["charts"] == {}


def test_prints_to_pdf_with_a_page_per_section(chromium: str, review_pages: dict[str, str], tmp_path: Path) -> None:
    page = tmp_path / "review.html"
    page.write_text(review_pages["zh"], encoding="utf-8")
    pdf = tmp_path / "review.pdf"
    _run(chromium, tmp_path, "--no-pdf-header-footer", f"--print-to-pdf={pdf}", page.as_uri())
    data = pdf.read_bytes()
    assert data.startswith(b"%PDF")
    pages = len(re.findall(rb"/Type\s*/Page(?![s\w])", data))
    assert pages >= len(SECTIONS)  # each section after the summary starts a new page
