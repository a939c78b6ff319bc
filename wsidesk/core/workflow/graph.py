"""The job graph of a workflow (or of a draft being edited): cycles, order and reachability, on networkx."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import networkx as nx


def job_graph(branches: Iterable[tuple[str, Sequence[str]]], depends_on: Iterable[tuple[str, str]]) -> nx.DiGraph:
    """Job ids as nodes (attr `branch`); edges run from a job to what must wait for it.

    Each job points to the next job of its branch (edge attr `kind="fifo"`) and to every job that names
    it in `depends_on` (`kind="depends_on"`, which wins when both apply). `depends_on` pairs are
    (dependency, dependent).
    """
    g = nx.DiGraph()
    for name, jobs in branches:
        for job_id in jobs:
            g.add_node(job_id, branch=name)
        for before, after in zip(jobs, jobs[1:], strict=False):
            g.add_edge(before, after, kind="fifo")
    for dep, job_id in depends_on:
        g.add_edge(dep, job_id, kind="depends_on")
    return g


def find_cycle(g: nx.DiGraph, rank: Mapping[str, int] | None = None) -> tuple[str, ...] | None:
    """A cycle of job ids, starting at its lowest-ranked job (so the message is stable), or None."""
    if nx.is_directed_acyclic_graph(g):
        return None
    nodes = [u for u, _ in nx.find_cycle(g)]
    order = rank or {}
    start = min(range(len(nodes)), key=lambda i: order.get(nodes[i], len(order)))
    return tuple(nodes[start:] + nodes[:start])


def cycle_text(cycle: Sequence[str]) -> str:
    return " -> ".join((*cycle, cycle[0]))


def topological_order(g: nx.DiGraph, rank: Mapping[str, int]) -> list[str]:
    """Job ids, each after everything it waits for; ties keep `rank` order. Raises NetworkXUnfeasible."""
    return list(nx.lexicographical_topological_sort(g, key=lambda n: rank.get(n, len(rank))))
