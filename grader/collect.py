"""The collector's old address, kept for nbgrader configurations outside this repository.

Why: grader/README.md used to tell instructors to run ``nbgrader zip_collect
--ZipCollectApp.collector_plugin=grader.collect.CourseFileNameCollector``, and an
instructor's own ``nbgrader_config.py`` may still name it so. The collector lives in
:mod:`grader.grading.collect`; nothing in this repository imports this module.
"""

from grader.grading.collect import CourseFileNameCollector

__all__ = ["CourseFileNameCollector"]
