"""What comes out of grading: feedback pages, the grades CSV, reports, the similarity report.

``feedback.py`` (one page per student, cleaned by ``sanitize.py``), ``export.py``
(``grades.csv`` and quiz variants), ``report.py`` (scores per part) and ``similarity.py``
(answers shared across a class).
"""
