"""What students are handed: the released notebooks, their Russian editions, the bundle.

``release.py`` (``solutions/`` -> ``notebooks/`` through nbgrader), ``editions.py`` (the
Russian masters from the English ones and ``translations/ru``), ``bundle.py`` (the student
zip) and ``syllabus.py`` (the course table and time budget, written into the READMEs).
"""
