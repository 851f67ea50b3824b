"""Feedback pages of hostile submissions: nothing a student wrote may run when they are opened.

Why: the instructor and the student open these pages in a browser. A submission's outputs
are whatever its code printed (``HTML``, ``Javascript``, raw ``display`` bundles, updated
displays, SVG, widgets) and its Markdown is raw HTML; any of it could run script, leak that
the page was opened, redirect, or make a page of gigabytes.

The class is the fixture course ``mini`` (tests/grader_corpus.py), graded by nbgrader's own
``Autograde`` converter (the student's kernel must print real IPython outputs; the grader's
sandbox is tested elsewhere and adds nothing here). Outputs that IPython cannot produce
(forged metadata, broken base64, widget state, a flood of cells) are then written straight
into the autograded notebook, which is what ``generate_feedback`` reads.
"""

from __future__ import annotations

import base64
import json
import re
import struct
import time
import zlib
from html.parser import HTMLParser
from pathlib import Path

import nbformat
import pytest
from grader_corpus import ASSIGNMENT, _cell, _complete, build_course
from nbformat.v4 import new_code_cell, new_markdown_cell, new_output, new_raw_cell

from grader.handout.release import release_all
from grader.results import sanitize
from grader.results.feedback import generate_feedback
from grader.results.sanitize import (
    CSP,
    JS_NOTE,
    WIDGET_NOTE,
    clean_html,
    clean_svg,
    page_problems,
)
from grader.stores.course import Course

pytestmark = [
    pytest.mark.filterwarnings("ignore::sqlalchemy.exc.SAWarning"),
    pytest.mark.filterwarnings("ignore::nbformat.warnings.MissingIDFieldWarning"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
]

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def png(width: int, height: int) -> bytes:
    """A real PNG (solid blue), so the browser test can check it is drawn."""
    row = b"\x00" + b"\x00\x00\xff" * width
    raw = zlib.compress(row * height)

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    signature = b"\x89PNG\r\n\x1a\n"
    return signature + chunk(b"IHDR", header) + chunk(b"IDAT", raw) + chunk(b"IEND", b"")


PNG_B64 = base64.b64encode(png(7, 5)).decode()

#: The student's own cell: every way IPython lets a kernel put markup into an output.
HOSTILE_CODE = f'''\
import base64
from IPython.display import HTML, SVG, Image, Javascript, Markdown, display, update_display
display(HTML('<script>document.title="PWNED"; window.__pwned = 1</script><b>bold survives</b>'))
display(HTML('<img src=x onerror="window.__pwned=2"><p onclick="window.__pwned=2">para</p>'))
display(HTML('<iframe src="javascript:top.__pwned=3"></iframe>'
             '<a href="javascript:__pwned=4">a</a>'))
display(HTML('<meta http-equiv="refresh" content="0;url=https://evil.example/">'
             '<base href="https://evil.example/"><form action="https://evil.example/">'
             '<input name=q><button formaction="javascript:__pwned=5">go</button></form>'))
display(HTML('<style>body{{display:none}}</style><div style="position:fixed;color:red">over</div>'))
display(HTML('<svg onload="window.__pwned=6"><script>window.__pwned=6</script></svg>'
             '<object data="javascript:__pwned=6"></object><embed src="x.swf">'
             '<img src="https://tracker.example/pixel.png">'))
display(Javascript('window.__pwned = 7; document.title = "PWNED"'))
display({{"text/html": '<img src=x onerror="window.__pwned=8">', "text/plain": "raw"}}, raw=True)
display(HTML('first version'), display_id="d1")
update_display(HTML('<img src=y onerror="window.__pwned=9">updated'), display_id="d1")
display(SVG('<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10" '
            'onload="window.__pwned=10"><script>window.__pwned=11</script>'
            '<rect width="10" height="10" fill="blue"/></svg>'))
display(Markdown('<div onmouseover="window.__pwned=12">markdown output</div>'))
display({{"application/vnd.jupyter.widget-view+json": {{"model_id": "m1", "version_major": 2,
          "version_minor": 0}}, "text/plain": "IntSlider(value=3)"}}, raw=True)
display(Image(data=base64.b64decode("{PNG_B64}")))
print("plain text survives")
print("x" * 100_000)
'''

HOSTILE_MARKDOWN = """\
<div onmouseover="window.__pwned=13">hover me</div>

[a link](javascript:window.__pwned=14) and [a fine link](https://example.org/)

<img src=x onerror="window.__pwned=15"> <script>window.__pwned=16</script>

<a href="data:text/html,<script>alert(1)</script>">data link</a> $x^2$
"""

LONG_ERROR = "raise ValueError('y' * 300_000)"


def autograde_plain(course: Course, student: str) -> None:
    """nbgrader's own autograder (see the module docstring)."""
    from nbgrader.converters import Autograde

    cfg = course.config()
    coursedir = course.coursedir(cfg, assignment_id=ASSIGNMENT, student_id=student)
    converter = Autograde(coursedir=coursedir, config=cfg)
    converter.force = True
    converter.start()


def submit(course: Course, student: str, edit) -> None:
    nb = nbformat.read(course.release / ASSIGNMENT / f"{ASSIGNMENT}.ipynb", as_version=4)
    _complete(nb)
    _cell(nb, "sol_answer").source = "answer = 41"  # test_answer fails: 2 of 4 points
    edit(nb)
    folder = course.submitted / student / ASSIGNMENT
    folder.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, folder / f"{ASSIGNMENT}.ipynb")


def hostile_cells(nb) -> None:
    nb.cells.insert(1, new_markdown_cell(HOSTILE_MARKDOWN))
    nb.cells.insert(2, new_code_cell(HOSTILE_CODE))
    nb.cells.insert(3, new_code_cell(LONG_ERROR))
    nb.cells.insert(4, new_raw_cell("<script>window.__pwned=17</script><b>raw cell</b>"))


def forge(path: Path) -> None:
    """What no kernel prints, written straight into the autograded notebook."""
    raw = json.loads(path.read_text())
    raw["metadata"]["widgets"] = {
        "application/vnd.jupyter.widget-state+json": {"state": {"</script><script>x": 1}}
    }
    forged = [
        {
            "output_type": "display_data",
            "data": {"image/png": '"><script>window.__pwned=18</script>'},
            "metadata": {"image/png": {"width": '1 onload="window.__pwned=19"'}},
        },
        {
            "output_type": "display_data",
            "data": {"text/html": "<b>isolated</b>"},
            "metadata": {"text/html": {"isolated": True}},
        },
        {
            "output_type": "execute_result",
            "execution_count": '1"><script>window.__pwned=20</script>',
            "data": {"application/javascript": "window.__pwned=21"},
            "metadata": {},
        },
        {
            "output_type": "display_data",
            "data": {"text/vnd.mermaid": "graph TD; A-->B", "application/pdf": "JVBERi0="},
            "metadata": {},
        },
    ]
    raw["cells"].append(
        {
            "cell_type": "code",
            "id": "forged",
            "execution_count": None,
            "metadata": {"tags": ['"><script>window.__pwned=22</script>']},
            "source": "# forged outputs",
            "outputs": forged,
        }
    )
    path.write_text(json.dumps(raw))


def flood(path: Path, cells: int = 600, chars: int = 30_000) -> None:
    """Hundreds of cells printing tens of thousands of characters each, and a huge error."""
    nb = nbformat.read(path, as_version=4)
    for i in range(cells):
        cell = new_code_cell(f"print('z' * {chars})")
        cell.outputs = [new_output("stream", name="stdout", text=f"{i}:" + "z" * chars)]
        nb.cells.append(cell)
    nbformat.write(nb, path)


class Pages:
    def __init__(self, root: Path) -> None:
        self.course = course = Course(root=build_course(root), instructor=root / ".instructor")
        release_all(course=course)
        submit(course, "mallory", hostile_cells)
        submit(course, "flooder", lambda nb: None)
        for student in ("mallory", "flooder"):
            autograde_plain(course, student)
        graded = course.autograded / "{}" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
        forge(Path(str(graded).format("mallory")))
        flood(Path(str(graded).format("flooder")))
        started = time.perf_counter()
        self.run = generate_feedback(course, ASSIGNMENT)
        self.seconds = time.perf_counter() - started

    def path(self, student: str) -> Path:
        return self.course.feedback / student / ASSIGNMENT / f"{ASSIGNMENT}.html"

    def html(self, student: str) -> str:
        return self.path(student).read_text()


@pytest.fixture(scope="module")
def pages(tmp_path_factory) -> Pages:
    return Pages(tmp_path_factory.mktemp("feedback") / "course")


class Tags(HTMLParser):
    """Every start tag of a page with its attributes, as a browser's parser sees them."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.feed(html)

    def handle_starttag(self, tag, attrs) -> None:
        self.tags.append((tag, {k: v or "" for k, v in attrs}))


def test_every_page_is_written(pages: Pages) -> None:
    assert pages.run.failed == {}
    assert sorted(pages.run.pages) == ["flooder", "mallory"]


@pytest.mark.parametrize("student", ["mallory", "flooder"])
def test_no_student_markup_can_run(pages: Pages, student: str) -> None:
    html = pages.html(student)
    lowered = html.lower()
    for needle in ("<script", "<iframe", "<object", "<embed", "<form", "<base", "<svg", "<input"):
        assert needle not in lowered, needle
    tags = Tags(html).tags
    handlers = [(t, a) for t, a in tags for name in a if name.startswith("on")]
    assert handlers == []
    urls = [v for _, a in tags for k, v in a.items() if k in ("href", "src", "action")]
    assert not [u for u in urls if re.sub(r"\s", "", u).lower().startswith("javascript:")]
    sources = [a.get("src", "data:image/") for t, a in tags if t == "img"]  # no src: inert
    assert all(src.startswith("data:image/") for src in sources), sources
    metas = [a for t, a in tags if t == "meta"]
    assert [m.get("http-equiv") for m in metas if "http-equiv" in m] == ["Content-Security-Policy"]
    assert page_problems(html) == []


@pytest.mark.parametrize("student", ["mallory", "flooder"])
def test_security_policy_is_first_in_head(pages: Pages, student: str) -> None:
    html = pages.html(student)
    first = re.search(r"<head>\s*(<[^>]+>)", html).group(1)
    assert first == f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
    for directive in (
        "script-src 'none'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-src 'none'",
        "img-src data:",
    ):
        assert directive in CSP


def test_what_the_student_needs_is_kept(pages: Pages) -> None:
    html = pages.html("mallory")
    assert "(Score: 2.0 / 4.0)" in html
    assert "Test cell</a> (Score: 0.0 / 2.0)" in html
    assert "answer is not the expected value" in html  # the failed part's assertion
    assert f'src="data:image/png;base64,{PNG_B64}"' in html
    assert "plain text survives" in html and "bold survives" in html
    assert "updated" in html and "markdown output" in html and "hover me" in html
    assert 'href="https://example.org/"' in html
    assert JS_NOTE in html and WIDGET_NOTE in html
    assert "raw cell" in html
    assert 'src="data:image/svg+xml;base64,' in html  # the SVG, as an inert image


def test_forged_outputs_are_neutralised(pages: Pages) -> None:
    html = pages.html("mallory")
    assert "[image removed by the grader: not valid base64]" in html
    assert "isolated" in html and "isolated-iframe" not in html
    assert "celltag_" not in html
    assert "application/vnd.jupyter.widget-state" not in html
    assert "[application/pdf, text/vnd.mermaid output removed by the grader]" in html


def test_svg_is_cleaned_before_it_becomes_an_image(pages: Pages) -> None:
    html = pages.html("mallory")
    encoded = re.search(r'src="data:image/svg\+xml;base64,([^"]+)"', html).group(1)
    svg = base64.b64decode(encoded).decode()
    assert "<rect" in svg and "script" not in svg and "onload" not in svg


def test_long_outputs_are_capped(pages: Pages) -> None:
    html = pages.html("mallory")
    longest = max(len(run) for run in re.findall(r"x+", html))
    assert 19_000 < longest <= 20_000, longest  # printed 100,000; the stream keeps 20,000
    assert re.search(r"\[\.\.\. 80,0\d\d more characters cut by the grader\]", html)
    assert "ValueError" in html and "y" * 20_001 not in html
    assert len(html) < 600_000, len(html)


def test_a_flood_stops_at_the_page_budget(pages: Pages) -> None:
    html = pages.html("flooder")
    size = pages.path("flooder").stat().st_size
    assert 5_000_000 < size < 11_000_000, size  # max_page_chars is 10,000,000
    assert "more cell(s) left out by the grader" in html
    assert "answer is not the expected value" in html  # graded parts always stay
    print(f"largest page: {size:,} bytes; feedback for 2 students: {pages.seconds:.1f} s")


def test_limits_are_configurable(pages: Pages) -> None:
    run = generate_feedback(
        pages.course,
        ASSIGNMENT,
        students=["flooder"],
        limits={"max_page_chars": 30_000, "max_output_chars": 1_000},
    )
    assert run.failed == {}
    html = pages.html("flooder")
    assert len(html) < 200_000, len(html)
    assert "answer is not the expected value" in html and "(Score: 2.0 / 4.0)" in html


def test_a_page_that_slips_through_is_refused(pages: Pages, monkeypatch) -> None:
    """If cleaning ever let script through, no page is written and the student is failed."""
    monkeypatch.setattr(sanitize, "clean_html", lambda html: html)
    run = generate_feedback(pages.course, ASSIGNMENT, students=["mallory"])
    assert "mallory" in run.failed and "<script>" in run.failed["mallory"]
    assert not pages.path("mallory").exists()
    monkeypatch.undo()
    run = generate_feedback(pages.course, ASSIGNMENT, students=["mallory"])
    assert run.failed == {} and pages.path("mallory").exists()


def test_a_stale_unsafe_page_is_deleted(tmp_path: Path) -> None:
    from grader.results.feedback import _unsafe_pages

    page = tmp_path / "old.html"
    page.write_text("<html><head></head><body><img src=x onerror=alert(1)></body></html>")
    assert "onerror" in _unsafe_pages([page]) and not page.exists()


@pytest.mark.parametrize(
    "dirty",
    [
        "<script>alert(1)</script>",
        "<img src=x onerror=alert(1)>",
        "<a href='javascript:alert(1)'>x</a>",
        "<a href=' jav&#x09;ascript:alert(1)'>x</a>",
        "<iframe srcdoc='<script>alert(1)</script>'></iframe>",
        "<svg><script>alert(1)</script></svg>",
        "<math><mtext><table><mglyph><style><img src=x onerror=alert(1)>",
        "<meta http-equiv=refresh content='0;url=https://evil.example'>",
        "<base href='https://evil.example/'>",
        "<form action='https://evil.example'><button>x</button></form>",
        "<div style='background:url(javascript:alert(1))'>x</div>",
        "<noscript><p title='</noscript><img src=x onerror=alert(1)>'>",
        "<details open ontoggle=alert(1)>",
        "<a href='data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg=='>x</a>",
        "<!--[if IE]><script>alert(1)</script><![endif]-->",
    ],
)
def test_clean_html_leaves_nothing_that_runs(dirty: str) -> None:
    clean = clean_html(dirty)
    page = f'<html><head><meta http-equiv="Content-Security-Policy" content="{CSP}"></head>'
    assert page_problems(f"{page}<body>{clean}</body></html>") == [], clean
    assert "alert" not in re.sub(r">[^<]*<", "><", f">{clean}<"), clean  # not in any markup


def test_clean_svg() -> None:
    svg = (
        '<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink">'
        "<script>alert(1)</script><foreignObject><div>x</div></foreignObject>"
        '<a xlink:href="javascript:alert(1)"><text>t</text></a>'
        '<set attributeName="href" to="javascript:alert(1)"/>'
        '<image href="https://tracker.example/x.png"/><circle r="1" onclick="alert(1)"/>'
        '<use href="#c"/></svg>'
    )
    clean = clean_svg(svg)
    assert "alert" not in clean and "tracker" not in clean and "<circle" in clean
    assert 'href="#c"' in clean
    assert clean_svg('<!DOCTYPE svg [<!ENTITY a "aaaa">]><svg>&a;</svg>') is None
    assert clean_svg("<svg><unclosed></svg>") is None


@pytest.mark.browser
def test_hostile_page_runs_nothing_in_chromium(pages: Pages, tmp_path: Path) -> None:
    """Opened in a real browser: no script ran, nothing was fetched, the image is drawn; and
    the CSP alone stops a script that got past the cleaning (simulated)."""
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    html = pages.html("mallory").replace("<body>", "<body><script>window.__pwned = 1</script>", 1)
    slipped = tmp_path / "slipped.html"
    slipped.write_text(html)
    control = tmp_path / "control.html"  # the same without the policy: the probe must see it
    control.write_text(re.sub(r'<meta http-equiv="Content-Security-Policy"[^>]*>', "", html))
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        try:
            page = browser.new_page()
            requests: list[str] = []
            console: list[str] = []
            page.on("request", lambda r: requests.append(r.url))
            page.on("console", lambda m: console.append(m.text))
            for path in (pages.path("mallory"), slipped):
                requests.clear()
                page.goto(path.as_uri())
                page.wait_for_timeout(500)
                state = page.evaluate(
                    "() => ({pwned: window.__pwned === undefined ? null : window.__pwned,"
                    " title: document.title, url: location.href,"
                    " png: [...document.images].filter(i => i.src.startsWith("
                    "'data:image/png') && i.naturalWidth === 7).length})"
                )
                assert state["pwned"] is None, (path.name, state, console)
                assert "PWNED" not in state["title"], state
                assert state["url"] == path.as_uri(), state  # no meta refresh
                assert state["png"] >= 1, state  # the CSP still lets data: images draw
                outside = [u for u in requests if not u.startswith(("file:", "data:"))]
                assert outside == [], outside
                page.hover("text=hover me")
                assert page.evaluate("() => window.__pwned === undefined")
            page.goto(control.as_uri())
            assert page.evaluate("() => window.__pwned") == 1
        finally:
            browser.close()
