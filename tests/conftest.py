"""Shared pytest fixtures.

``emulator``: a tuning emulator on a free loopback port with an empty store, running 100,000x
faster than the simulated clock (a 625-step job finishes in ~8 ms), and google.generativeai
configured to talk to it. Yields a :class:`tunelab.emulator.server.EmulatorServer`
(``.endpoint``, ``.store``); set ``emulator.store.time_scale`` to slow new jobs down. One
server per test session is shared; each test gets a fresh store.
"""

from __future__ import annotations

import pytest

#: the browser tests' ``browser`` and ``page`` fixtures (tests/browser_support.py)
pytest_plugins = ("browser_support",)

FAST_TIME_SCALE = 1e5


@pytest.fixture(scope="session")
def _emulator_server():
    from tunelab.emulator import server

    srv = server.start(time_scale=FAST_TIME_SCALE, poll_delay=0.0)
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
def emulator(_emulator_server):
    from tunelab.emulator import server

    _emulator_server.reset(time_scale=FAST_TIME_SCALE, poll_delay=0.0)
    server.configure_generativeai(_emulator_server.endpoint)
    return _emulator_server


#: Modules that take minutes (a graded corpus, a class hub, browsers), slowest first. They are
#: collected first, so pytest-xdist (``--dist loadfile`` hands out whole modules in collection
#: order, see :func:`pytest_configure`) starts them at once, beside the many short modules,
#: rather than last and alone.
LONG_MODULES = (
    "test_grader_adversarial.py",
    "test_hub.py",
    "test_browser_ru.py",
    "test_browser.py",
    "test_grader_autograde.py",
    "test_assignments.py",
    "test_notebooks.py",
    "test_editions.py",
    "test_russian_runtime.py",
    "test_grader_dask.py",
    "test_cheating.py",
    "test_sql_checker_hidden.py",
    "test_grader_demo.py",
    "test_grader_postgres.py",
)


def pytest_configure(config: pytest.Config) -> None:
    """Keep xdist's hand-out in collection order (LONG_MODULES first).

    pytest-xdist (3.8 here) reorders ``--dist loadfile`` modules by their number of tests
    unless told not to (``--no-loadscope-reorder``); the class hub, three long tests, then
    came near the end and ran alone for minutes while the other worker sat idle."""
    if hasattr(config.option, "loadscopereorder"):
        config.option.loadscopereorder = False


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {name: index for index, name in enumerate(LONG_MODULES)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: others keep order


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Keep each phase's report on the test item (``item.rep_call``...), so a fixture's
    teardown knows whether its test failed (browser_support.page_for screenshots it)."""
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)
