"""A Jupyter server extension for the instructor: formgrader's unsafe buttons do nothing.

Why: formgrader offers *Generate* (nbgrader's generate_assignment: regenerates the student
copies and would overwrite the committed ``notebooks/``), per-submission *Autograde* (runs the
student's code unsandboxed in the instructor's own kernel and scores by outputs) and
*Generate Feedback* (unsanitised HTML). This course does those with ``python -m grader
release | autograde | feedback``. The extension answers those three API calls itself, before
formgrader sees them, with the command to use instead; formgrader shows that message in its
error dialog, and a style sheet hides the buttons.

Enabled for instructors' servers by ``hub/jupyterhub_config.py``
(``jpserver_extensions: {"tunelab_formgrader_guard": true}``).
"""

from __future__ import annotations

import json

from jupyter_server.base.handlers import JupyterHandler
from tornado import web

INSTEAD = {
    "assign": "python -m grader release (never formgrader's Generate)",
    "autograde": "python -m grader autograde ASSIGNMENT (sandboxed, trusted verdicts)",
    "generate_feedback": "python -m grader feedback ASSIGNMENT (sanitised pages)",
}
#: formgrader's rows are drawn by its scripts; these cells hold the refused buttons.
HIDE_CSS = "td.assign a, td.autograde a, td.generate-feedback a { display: none !important; }\n"


class Refused(JupyterHandler):
    """POST to a refused formgrader action: a JSON error formgrader shows in its dialog."""

    def initialize(self, action: str) -> None:
        self.action = action

    @web.authenticated
    def post(self, *args: str) -> None:
        self.set_status(200)  # formgrader shows "error" only from a 200 reply's body
        self.set_header("Content-Type", "application/json")
        message = f"Disabled in this course: use {INSTEAD[self.action]} in a terminal."
        self.finish(json.dumps({"success": False, "error": message, "log": message}))

    get = post


class HideCss(JupyterHandler):
    @web.authenticated
    def get(self) -> None:
        self.set_header("Content-Type", "text/css")
        self.finish(HIDE_CSS)


def _jupyter_server_extension_points() -> list[dict]:
    return [{"module": "tunelab_formgrader_guard"}]


def _load_jupyter_server_extension(serverapp) -> None:
    base = serverapp.web_app.settings["base_url"].rstrip("/")
    api = f"{base}/formgrader/api"
    handlers = [
        (rf"{api}/assignment/([^/]+)/assign", Refused, {"action": "assign"}),
        (rf"{api}/submission/([^/]+)/([^/]+)/autograde", Refused, {"action": "autograde"}),
        (rf"{api}/assignment/([^/]+)/generate_feedback", Refused, {"action": "generate_feedback"}),
        (
            rf"{api}/assignment/([^/]+)/([^/]+)/generate_feedback",
            Refused,
            {"action": "generate_feedback"},
        ),
        (rf"{base}/tunelab/formgrader-guard.css", HideCss),
    ]
    # Before every other handler (formgrader's own included): first match wins in tornado.
    rules = serverapp.web_app.default_router.rules
    serverapp.web_app.add_handlers(".*$", handlers)  # inserted just before the wildcard rule
    rules.insert(0, rules.pop(-2))
    _patch_formgrader_pages(base)
    serverapp.log.info("tunelab: formgrader's Generate/Autograde/Generate Feedback disabled")


def _patch_formgrader_pages(base: str) -> None:
    """Add the style sheet to every formgrader page (all rendered by its BaseHandler)."""
    from nbgrader.server_extensions.formgrader.base import BaseHandler

    if getattr(BaseHandler.render, "tunelab_guard", False):
        return
    original = BaseHandler.render
    link = f'<link rel="stylesheet" href="{base}/tunelab/formgrader-guard.css">'

    def render(self, name, **ns) -> str:
        return original(self, name, **ns).replace("</head>", link + "</head>", 1)

    render.tunelab_guard = True
    BaseHandler.render = render
