"""Backends depend on their protocol module, never the other way round (no import cycles, lazy ones included)."""

from __future__ import annotations

import grimp
import pytest

PAIRS = [
    # (protocol side, backend side)
    ("wsidesk.core.scheduler.executors", "wsidesk.core.scheduler.dask_executor"),
    ("wsidesk.core.slide.protocol", "wsidesk.core.slide.openslide_reader"),
    ("wsidesk.core.slide.reader", "wsidesk.core.slide.openslide_reader"),
    ("wsidesk.core.segment.models.layout", "wsidesk.core.segment.models.registry"),
]


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    return grimp.build_graph("wsidesk")


@pytest.mark.parametrize(("a", "b"), PAIRS)
def test_no_import_cycle_between(graph: grimp.ImportGraph, a: str, b: str) -> None:
    there = graph.find_shortest_chain(importer=a, imported=b)
    back = graph.find_shortest_chain(importer=b, imported=a)
    assert there is None or back is None, f"import cycle: {there} and back {back}"


def test_no_import_cycles_in_slides_scheduler_and_models(graph: grimp.ImportGraph) -> None:
    packages = ("wsidesk.core.slide", "wsidesk.core.scheduler", "wsidesk.core.segment.models")
    modules = sorted(m for m in graph.modules if m.startswith(packages))
    cycles = [
        (m, n)
        for m in modules
        for n in graph.find_modules_directly_imported_by(m)
        if n.startswith(packages) and graph.find_shortest_chain(importer=n, imported=m)
    ]
    assert not cycles, f"import cycles: {cycles}"
