"""Feedback pages that never run what a student put in a notebook.

A feedback page is the student's autograded notebook rendered by nbconvert, and opened by
the instructor and the student. A submission is untrusted: its outputs can carry
``<script>``, event handlers, ``javascript:`` links, frames, forms, ``<meta refresh>``,
``Javascript(...)`` and widget outputs, SVG with script, and gigabytes of text. Three layers,
each enough on its own for scripts:

1. :class:`SanitizeForFeedback`, a preprocessor run before nbconvert renders: it rebuilds
   every cell from an allow-list. ``text/html`` goes through :func:`clean_html` (nh3),
   SVG through :func:`clean_svg` (and is shown as an ``<img>``, where SVG cannot run
   script), JavaScript and widget outputs become a visible note, images must be plain
   base64, metadata the templates print (grade ids, cell ids, tags, image sizes) is checked
   or dropped, and every text is capped so a page stays small.
2. :class:`SafeFeedbackExporter`, nbgrader's HTML exporter with Markdown (cells, Markdown
   outputs, comments) passed through :func:`clean_html` after rendering, the template's
   MathJax ``<script>`` tags left out, and a Content-Security-Policy ``<meta>`` as the first
   element of ``<head>``: ``script-src 'none'`` (the page needs no script: scores, the table
   of contents and anchors are plain HTML; MathJax came from a CDN, which an offline course
   cannot reach anyway, so TeX is shown as written), no plugins, frames, forms or ``<base>``,
   images only from ``data:`` URLs (no tracking pixels) and inline styles only.
3. :func:`page_problems`, a check of the final HTML: a page with any script, frame, form,
   event handler or ``javascript:`` URL left is refused (nbgrader then writes no page and the
   student is listed as failed) instead of being written.
"""

from __future__ import annotations

import base64
import binascii
import copy
import re
import uuid
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from typing import Any

import nh3
from jinja2 import DictLoader, pass_context
from nbconvert.exporters import HTMLExporter
from nbconvert.preprocessors import Preprocessor
from nbformat import NotebookNode
from traitlets import Integer, default

JS_NOTE = "[JavaScript output removed by the grader]"
WIDGET_NOTE = "[interactive widget output removed by the grader]"
DROPPED_NOTE = "[{mime} output removed by the grader]"
CUT_NOTE = "[... {n:,} more characters cut by the grader]"
FULL_NOTE = "[output removed by the grader: this feedback page reached its size limit]"
CELLS_NOTE = (
    "*[{n} more cell(s) left out by the grader: this feedback page reached its size limit]*"
)
IMAGE_NOTE = "[image removed by the grader: {why}]"
SVG_NOTE = "[SVG image removed by the grader: it is not well-formed]"

#: The Content-Security-Policy of every feedback page (see the module docstring).
CSP = (
    "default-src 'none'; script-src 'none'; object-src 'none'; base-uri 'none'; "
    "form-action 'none'; frame-src 'none'; child-src 'none'; worker-src 'none'; "
    "img-src data:; style-src 'unsafe-inline'; font-src data:"
)
CSP_META = f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'

# -- HTML --------------------------------------------------------------------------------------
_TAGS = set(nh3.ALLOWED_TAGS) | {"tfoot"}
#: Removed with everything inside them (the others not allowed keep their text).
_DROP_WITH_CONTENT = {
    "script",
    "style",
    "svg",
    "math",
    "template",
    "noscript",
    "iframe",
    "object",
    "embed",
    "textarea",
    "select",
    "title",
    "xmp",
    "noembed",
    "noframes",
}
_ATTRIBUTES = {tag: set(names) for tag, names in nh3.ALLOWED_ATTRIBUTES.items()}
_ATTRIBUTES["*"] = {"title", "lang", "dir", "style"}
#: Styles that change looks but cannot cover the page (no position, no url()).
_STYLES = {
    "color",
    "background-color",
    "font-weight",
    "font-style",
    "font-family",
    "font-size",
    "text-align",
    "text-decoration",
    "vertical-align",
    "white-space",
    "border",
    "border-collapse",
    "border-color",
    "border-style",
    "border-width",
    "padding",
    "margin",
    "width",
    "height",
}
_RASTER_DATA_URL = re.compile(r"data:image/(png|jpeg|gif|webp);base64,[A-Za-z0-9+/=\s]*\Z", re.I)


def _attribute_filter(tag: str, attr: str, value: str) -> str | None:
    """Images only from raster ``data:`` URLs (nothing fetched, no SVG); no other ``data:``."""
    if tag == "img" and attr == "src":
        return value if _RASTER_DATA_URL.match(value.strip()) else None
    if value.strip().lower().startswith("data:"):
        return None
    return value


_CLEANER = nh3.Cleaner(
    tags=_TAGS,
    clean_content_tags=_DROP_WITH_CONTENT,
    attributes=_ATTRIBUTES,
    attribute_filter=_attribute_filter,
    strip_comments=True,
    link_rel="noopener noreferrer nofollow",
    url_schemes={"http", "https", "mailto", "data"},
    filter_style_properties=_STYLES,
)


def clean_html(html: str) -> str:
    """Student HTML with only inert markup left: no script, handlers, frames, forms, meta."""
    return _CLEANER.clean(html)


# -- SVG ---------------------------------------------------------------------------------------
_SVG_NS = "http://www.w3.org/2000/svg"
_XLINK_NS = "http://www.w3.org/1999/xlink"
ET.register_namespace("", _SVG_NS)
ET.register_namespace("xlink", _XLINK_NS)
_SVG_DROP = {"script", "foreignobject", "iframe", "object", "embed", "handler", "listener"}
_SVG_DROP |= {"set", "animate", "animatemotion", "animatetransform", "a"}


def _local(name: str) -> str:
    return name.rsplit("}", 1)[-1].lower()


def clean_svg(svg: str) -> str | None:
    """An SVG without script, foreign HTML, animations, links or event handlers; ``None``
    when it is not well-formed XML (or declares entities). It is still only ever shown as an
    ``<img>`` (where browsers run no script and fetch nothing): this is the second belt."""
    if re.search(r"<!(DOCTYPE|ENTITY)", svg, re.I):
        return None
    try:
        root = ET.fromstring(svg)
    except ET.ParseError:
        return None
    if _local(root.tag) != "svg":
        return None
    for parent in list(root.iter()):
        for child in list(parent):
            if not isinstance(child.tag, str) or _local(child.tag) in _SVG_DROP:
                parent.remove(child)
        for name in list(parent.attrib):
            value = parent.attrib[name].strip().lower()
            local = _local(name)
            is_link = local in {"href", "src"}
            if (
                local.startswith("on")
                or (is_link and not value.startswith("#"))
                or "javascript:" in value
                or ("url(" in value and "url(#" not in value)
            ):
                del parent.attrib[name]
        if _local(parent.tag) == "style" and parent.text:
            parent.text = re.sub(r"@import[^;]*;?", "", parent.text, flags=re.I)
    return ET.tostring(root, encoding="unicode")


# -- capping -----------------------------------------------------------------------------------
def cap(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, with a note saying how much is gone."""
    if len(text) <= limit:
        return text
    return text[:limit] + "\n" + CUT_NOTE.format(n=len(text) - limit)


def _cap_traceback(lines: list[str], limit: int) -> list[str]:
    """The first lines up to ``limit`` characters, a note, and the last line (which names the
    exception), so a huge traceback still ends with the message the student needs."""
    if sum(len(line) for line in lines) <= limit:
        return lines
    kept: list[str] = []
    used = 0
    for line in lines[:-1]:
        if used + len(line) > limit // 2:
            break
        kept.append(line)
        used += len(line)
    cut = sum(len(line) for line in lines) - used - len(lines[-1])
    notes = [CUT_NOTE.format(n=cut)] if cut > 0 else []
    return [*kept, *notes, cap(lines[-1], limit // 2)]


# -- the preprocessor --------------------------------------------------------------------------
_SAFE_ID = re.compile(r"[A-Za-z0-9_\-]{1,64}\Z")
_TEXT_MIMES = ("text/plain", "text/markdown", "text/latex")
_IMAGE_MIMES = ("image/png", "image/jpeg")
_NBGRADER_FLAGS = ("grade", "solution", "locked", "task")
# characters of template markup per cell and per output, counted against the page budget
_CELL_OVERHEAD = 300
_OUTPUT_OVERHEAD = 200


def _is_script(mime: str) -> bool:
    return "javascript" in mime or "ecmascript" in mime


def _as_str(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return "".join(value)
    return None


def _size(value: Any) -> int | None:
    """An image width/height the template may print: a small positive integer, else None."""
    try:
        number = int(str(value).removesuffix("px"))
    except ValueError:
        return None
    return number if 0 < number <= 10_000 else None


class SanitizeForFeedback(Preprocessor):
    """Rebuild an autograded notebook from an allow-list before it is rendered to HTML."""

    max_output_chars = Integer(
        20_000, help="Characters kept of each text output, error traceback or HTML output."
    ).tag(config=True)
    max_source_chars = Integer(100_000, help="Characters kept of each cell's source.").tag(
        config=True
    )
    max_image_chars = Integer(
        3_000_000, help="Largest base64 image (or SVG, or cell attachment) kept, in characters."
    ).tag(config=True)
    max_page_chars = Integer(
        10_000_000,
        help="Budget for everything a student wrote into one page; past it, outputs are "
        "replaced by a note and cells the student added are left out.",
    ).tag(config=True)

    def preprocess(self, nb: NotebookNode, resources: dict) -> tuple[NotebookNode, dict]:
        self._budget = self.max_page_chars
        meta = nb.get("metadata", {})
        nb.metadata = NotebookNode(
            {k: meta[k] for k in ("kernelspec", "language_info") if isinstance(meta.get(k), dict)}
        )
        cells: list[NotebookNode] = []
        left_out = 0
        for cell in nb.cells:
            keep = self._clean_cell(cell)
            if keep is None:
                left_out += 1
            else:
                cells.append(keep)
        if left_out:
            note = NotebookNode(
                cell_type="markdown",
                id=uuid.uuid4().hex[:8],
                metadata=NotebookNode(),
                source=CELLS_NOTE.format(n=left_out),
            )
            cells.append(note)
        nb.cells = cells
        return nb, resources

    # -- cells ---------------------------------------------------------------------------
    def _spend(self, chars: int) -> bool:
        """Take ``chars`` from the page budget; False (and nothing taken) when it is spent."""
        if chars > self._budget:
            self._budget = 0
            return False
        self._budget -= chars
        return True

    def _clean_cell(self, cell: NotebookNode) -> NotebookNode | None:
        nbgrader = self._nbgrader_metadata(cell)
        source = cap(_as_str(cell.get("source")) or "", self.max_source_chars)
        if not self._spend(len(source) + _CELL_OVERHEAD) and not nbgrader:
            return None  # a cell the student added, past the budget
        cell_type = cell.get("cell_type")
        cell_id = cell.get("id")
        new = NotebookNode(
            cell_type=cell_type if cell_type in ("code", "markdown", "raw") else "raw",
            id=cell_id if isinstance(cell_id, str) and _SAFE_ID.match(cell_id) else None,
            metadata=NotebookNode({"nbgrader": nbgrader} if nbgrader else {}),
            source=source,
        )
        if new.id is None:
            new.id = uuid.uuid4().hex[:8]
        if new.cell_type == "code":
            count = cell.get("execution_count")
            new.execution_count = count if isinstance(count, int) else None
            new.outputs = self._clean_outputs(cell.get("outputs"))
        elif new.cell_type == "markdown":
            attachments = self._clean_attachments(cell.get("attachments"))
            if attachments:
                new.attachments = attachments
        else:
            new.source = clean_html(source)
        return new

    @staticmethod
    def _nbgrader_metadata(cell: NotebookNode) -> NotebookNode | None:
        """The nbgrader fields the feedback template reads, each of the expected type."""
        meta = cell.get("metadata", {}).get("nbgrader")
        if not isinstance(meta, dict):
            return None
        clean = NotebookNode({k: bool(meta.get(k, False)) for k in _NBGRADER_FLAGS})
        grade_id = meta.get("grade_id")
        if isinstance(grade_id, str):
            clean.grade_id = re.sub(r"[^A-Za-z0-9_\-]", "_", grade_id)[:200]
        points = meta.get("points")
        if isinstance(points, int | float) and not isinstance(points, bool):
            clean.points = float(points)
        if isinstance(meta.get("schema_version"), int):
            clean.schema_version = meta["schema_version"]
        return clean

    def _clean_attachments(self, attachments: Any) -> NotebookNode | None:
        """Raster images only (Markdown shows them through ``data:`` URLs)."""
        if not isinstance(attachments, dict):
            return None
        kept = NotebookNode()
        for name, bundle in attachments.items():
            if not isinstance(name, str) or not isinstance(bundle, dict):
                continue
            images = {}
            for mime, data in bundle.items():
                data = _as_str(data)
                if mime in _IMAGE_MIMES and data and self._image_ok(data) is None:
                    images[mime] = data
            if images and self._spend(sum(len(v) for v in images.values())):
                kept[name] = NotebookNode(images)
        return kept or None

    # -- outputs -------------------------------------------------------------------------
    def _note(self, text: str) -> NotebookNode:
        return NotebookNode(
            output_type="display_data", data=NotebookNode({"text/plain": text}), metadata={}
        )

    def _clean_outputs(self, outputs: Any) -> list[NotebookNode]:
        """Each output cleaned; past the budget, one note instead of the rest."""
        kept: list[NotebookNode] = []
        for output in outputs if isinstance(outputs, list) else []:
            new = self._clean_output(output) if self._spend(_OUTPUT_OVERHEAD) else None
            if new is None and self._budget == 0:
                new = self._note(FULL_NOTE)
            if new is None or (new == self._note(FULL_NOTE) and kept and kept[-1] == new):
                continue
            kept.append(new)
        return kept

    def _clean_output(self, output: Any) -> NotebookNode | None:
        if not isinstance(output, dict):
            return None
        kind = output.get("output_type")
        if kind == "stream":
            text = cap(_as_str(output.get("text")) or "", self.max_output_chars)
            if not self._spend(len(text)):
                return self._note(FULL_NOTE)
            name = "stderr" if output.get("name") == "stderr" else "stdout"
            return NotebookNode(output_type="stream", name=name, text=text)
        if kind == "error":
            return self._clean_error(output)
        if kind in ("display_data", "execute_result", "update_display_data"):
            new = self._clean_display(output)
            if kind == "execute_result":
                count = output.get("execution_count")
                new.output_type = "execute_result"
                new.execution_count = count if isinstance(count, int) else None
            return new
        return None  # not an nbformat output: nothing to show

    def _clean_error(self, output: dict) -> NotebookNode:
        ename = cap(_as_str(output.get("ename")) or "Error", 200)
        evalue = cap(_as_str(output.get("evalue")) or "", self.max_output_chars)
        raw = output.get("traceback")
        lines = [line for line in raw if isinstance(line, str)] if isinstance(raw, list) else []
        if not lines:  # the message must be there even when the traceback is not
            lines = [f"{ename}: {evalue}"]
        lines = _cap_traceback(lines, self.max_output_chars)
        if not self._spend(sum(len(line) for line in lines) + len(evalue)):
            # a part's error message is what the student needs most: keep a short one
            lines = [cap(f"{ename}: {evalue}", 1_000)]
            evalue = cap(evalue, 1_000)
        return NotebookNode(output_type="error", ename=ename, evalue=evalue, traceback=lines)

    def _clean_display(self, output: dict) -> NotebookNode:
        data = output.get("data") if isinstance(output.get("data"), dict) else {}
        meta = output.get("metadata") if isinstance(output.get("metadata"), dict) else {}
        new = NotebookNode(output_type="display_data", data=NotebookNode(), metadata=NotebookNode())
        notes: list[str] = []
        for mime, value in data.items():
            mime = str(mime).lower()
            if _is_script(mime):
                notes.append(JS_NOTE)
            elif "widget" in mime:
                notes.append(WIDGET_NOTE)
            elif mime in ("text/html", "image/svg+xml", *_TEXT_MIMES, *_IMAGE_MIMES):
                kept = self._clean_data(mime, _as_str(value), meta)
                if isinstance(kept, str):
                    new.data[mime] = kept
                elif kept is not None:
                    notes.append(kept[0])
        if notes:  # the script or widget cannot be shown; its text/plain stand-in is noise
            new.data.pop("text/plain", None)
            shown = [m for m in new.data if m != "text/plain"]
            if not shown:
                new.data = NotebookNode({"text/plain": "\n".join(dict.fromkeys(notes))})
        if not new.data:
            mimes = ", ".join(sorted(str(m) for m in data)) or "empty"
            new.data["text/plain"] = DROPPED_NOTE.format(mime=mimes)
        if not self._spend(sum(len(v) for v in new.data.values())):
            return self._note(FULL_NOTE)
        for mime in _IMAGE_MIMES:
            if mime in new.data:
                new.metadata[mime] = self._image_size(meta, mime)
        return new

    def _clean_data(self, mime: str, value: str | None, meta: dict) -> str | tuple[str] | None:
        """The kept value; a 1-tuple with a note when it had to go; None to drop silently."""
        if value is None:
            return None
        if mime in _IMAGE_MIMES:
            why = self._image_ok(value)
            return (IMAGE_NOTE.format(why=why),) if why else re.sub(r"\s+", "", value)
        if mime == "image/svg+xml":
            if len(value) > self.max_image_chars:
                return (IMAGE_NOTE.format(why="too large"),)
            svg = clean_svg(value)
            return svg if svg is not None else (SVG_NOTE,)
        if mime == "text/html":
            html = clean_html(value[: self.max_output_chars])
            if len(value) > self.max_output_chars:
                cut = CUT_NOTE.format(n=len(value) - self.max_output_chars)
                html += f"<p><em>{cut}</em></p>"
            return html
        return cap(value, self.max_output_chars)

    def _image_ok(self, data: str) -> str | None:
        """Why a base64 image cannot be shown, or None when it can."""
        if len(data) > self.max_image_chars:
            return f"larger than {self.max_image_chars:,} characters"
        compact = re.sub(r"\s+", "", data)
        try:
            base64.b64decode(compact, validate=True)
        except (binascii.Error, ValueError):
            return "not valid base64"
        return None

    @staticmethod
    def _image_size(meta: dict, mime: str) -> NotebookNode:
        per_mime = meta.get(mime) if isinstance(meta.get(mime), dict) else {}
        size = NotebookNode()
        for key in ("width", "height"):
            value = _size(per_mime.get(key, meta.get(key)))
            if value is not None:
                size[key] = value
        return size


# -- the exporter ------------------------------------------------------------------------------
#: Templates that replace nbconvert's script-loading macros with nothing.
_NO_SCRIPT_TEMPLATES = {
    "mathjax.html.j2": "{%- macro mathjax(url=None) -%}{%- endmacro %}",
    "jupyter_widgets.html.j2": (
        "{%- macro jupyter_widgets(widgets_cdn_url, html_manager_semver_range, "
        "widget_renderer_url='') -%}{%- endmacro %}"
    ),
}


class UnsafePageError(Exception):
    """A rendered page still holds something that could run; it must not be written."""


class SafeFeedbackExporter(HTMLExporter):
    """nbgrader's feedback HTML exporter, with sanitised Markdown, no scripts and a CSP."""

    @default("extra_loaders")
    def _extra_loaders_default(self) -> list:
        return [DictLoader(_NO_SCRIPT_TEMPLATES)]

    @default("exclude_anchor_links")
    def _exclude_anchor_links_default(self) -> bool:
        return True  # their CSS class is stripped, so the pilcrows would show

    @pass_context
    def markdown2html(self, context: Any, source: str) -> str:
        return clean_html(super().markdown2html(context, source))

    def from_notebook_node(
        self, nb: NotebookNode, resources: dict | None = None, **kw: Any
    ) -> tuple[str, dict]:
        self.skip_svg_encoding = False  # SVG only ever as <img src="data:...">
        self.sanitize_html = False  # done with nh3; nbconvert's bleach would drop images
        # Here rather than in a configurable preprocessor list, so it cannot be left out;
        # before nbgrader's GetGrades, which adds the scores and comments from the gradebook.
        nb, resources = SanitizeForFeedback(parent=self).preprocess(copy.deepcopy(nb), resources)
        html, resources = super().from_notebook_node(nb, resources, **kw)
        html = add_csp(html)
        problems = page_problems(html)
        if problems:
            raise UnsafePageError("feedback page refused: " + "; ".join(problems[:5]))
        return html, resources


def add_csp(html: str) -> str:
    """The page with :data:`CSP_META` as the first element of its ``<head>``."""
    match = re.search(r"<head(\s[^>]*)?>", html, re.I)
    if match is None:
        raise UnsafePageError("feedback page has no <head> to put its security policy in")
    return html[: match.end()] + "\n" + CSP_META + html[match.end() :]


# -- the final check ---------------------------------------------------------------------------
_FORBIDDEN_TAGS = {
    "script",
    "iframe",
    "frame",
    "frameset",
    "object",
    "embed",
    "applet",
    "form",
    "input",
    "button",
    "textarea",
    "select",
    "base",
    "link",
    "svg",
    "math",
    "portal",
    "template",
    "audio",
    "video",
    "source",
    "track",
}
_URL_ATTRS = {"href", "src", "action", "formaction", "xlink:href", "data", "poster", "cite"}
_IMAGE_SRC = re.compile(r"data:image/(png|jpeg|gif|webp|svg\+xml);base64,", re.I)


class _PageChecker(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.problems: list[str] = []
        self.csp = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _FORBIDDEN_TAGS:
            self.problems.append(f"<{tag}>")
        values = {name: value or "" for name, value in attrs}
        if tag == "meta" and set(values) - {"charset"}:
            if values.get("http-equiv", "").lower() == "content-security-policy":
                self.csp += 1
                if values.get("content") != CSP:
                    self.problems.append("a second security policy")
            else:
                self.problems.append(f"<meta {' '.join(values)}>")
        for name, value in values.items():
            plain = re.sub(r"[\s\x00-\x1f]", "", value).lower()
            if name.startswith("on") or name in ("srcdoc", "formaction", "action"):
                self.problems.append(f"<{tag} {name}=...>")
            elif name in _URL_ATTRS and re.match(r"(javascript|vbscript|livescript):", plain):
                self.problems.append(f"<{tag} {name}={plain[:20]}...>")
            elif tag == "img" and name == "src" and not _IMAGE_SRC.match(value.strip()):
                self.problems.append(f"<img src={value[:30]}...>")
            elif name != "src" and plain.startswith("data:"):
                self.problems.append(f"<{tag} {name}=data:...>")

    handle_startendtag = handle_starttag


def page_problems(html: str) -> list[str]:
    """What in a finished page could run or call out (empty for a safe page)."""
    checker = _PageChecker()
    checker.feed(html)
    checker.close()
    if checker.csp != 1:
        checker.problems.append(f"{checker.csp} security policies instead of 1")
    return checker.problems
