"""Grading a class: collect the submissions, autograde them here or on a Dask cluster.

``collect.py`` (LMS downloads and submitted/ folders), ``autograde.py`` (nbgrader's
``Autograde`` converter, sandboxed and in parallel) and ``distributed.py`` (the same on Dask
workers).
"""
