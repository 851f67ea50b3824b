"""The suite's own schedule: pytest-xdist starts the long modules first, as conftest asks."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from conftest import LONG_MODULES


class _Worker:
    """What xdist's scheduler calls on a worker: it records the tests it is sent."""

    def __init__(self, name: str) -> None:
        self.gateway = SimpleNamespace(id=name)
        self.shutting_down = False
        self.sent: list[list[int]] = []

    def send_runtest_some(self, indexes: list[int]) -> None:
        self.sent.append(list(indexes))

    def shutdown(self) -> None:
        self.shutting_down = True


def test_xdist_hands_out_the_long_modules_first(
    pytestconfig: pytest.Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The two slowest modules (a few long tests each) go out before a short module that has
    many tests: with xdist's default reordering by test count they would run last."""
    from xdist.scheduler import LoadFileScheduling, loadscope

    # two workers, whatever -n this run was started with (none, in a plain run)
    monkeypatch.setattr(loadscope, "parse_tx_spec_config", lambda config: ["popen"] * 2)

    collection = [f"tests/{m}::test_{i}" for m in LONG_MODULES[:3] for i in range(3)]
    collection += [f"tests/test_many_short_ones.py::test_{i}" for i in range(50)]
    scheduler = LoadFileScheduling(pytestconfig)
    workers = [_Worker("gw0"), _Worker("gw1")]
    for worker in workers:
        scheduler.add_node(worker)
        scheduler.add_node_collection(worker, collection)
    scheduler.schedule()

    first = [{collection[i].split("::")[0] for i in w.sent[0]} for w in workers]
    assert first == [{f"tests/{LONG_MODULES[0]}"}, {f"tests/{LONG_MODULES[1]}"}]
