"""nbgrader's collect for the class hub: a submission counts only if its owner is its student.

Why: on the class hub each student is the OS user ``jupyter-NAME`` and nbgrader names
submissions after the hub name (``CourseDirectory.student_id``, from the student's own config,
which they could edit). nbgrader's ``check_owner`` only *warns* when a submission named for
one student is owned by another; here such a submission is not collected and the instructor
is told who tried. Used by instructors' servers (``c.ExchangeFactory.collect``) in
``hub/jupyterhub_config.py``.
"""

from __future__ import annotations

import os
import pwd

from nbgrader.exchange.default.collect import ExchangeCollect
from tunelab_hub import system_name


class OwnerCheckedCollect(ExchangeCollect):
    """ExchangeCollect that drops submissions not owned by the OS user of the named student."""

    def init_src(self) -> None:
        super().init_src()
        self.check_owner = False  # checked here, strictly, instead of nbgrader's warning
        kept = []
        for rec in self.src_records:
            path = os.path.join(self.inbound_path, rec["filename"])
            try:
                owner = pwd.getpwuid(os.stat(path).st_uid).pw_name
            except (KeyError, OSError):
                owner = "an unknown user"
            if owner == system_name(rec["username"]):
                kept.append(rec)
            else:
                self.log.error(
                    "NOT collected: %s claims to be %s's submission but belongs to %s",
                    rec["filename"],
                    rec["username"],
                    owner,
                )
        self.src_records = kept
