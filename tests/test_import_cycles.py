"""No import circle anywhere in kfd.

A circle means no module of it can be read, tested or changed alone. Every
import counts: those under ``TYPE_CHECKING`` and those inside functions are
dependencies to a reader as much as the ones at the top. A step that needs
something of a module above it names that need as a small Protocol below it
(`kfd.agent.ports`, `kfd.daemon.ports`, `kfd.triggers.manager.Sessions`,
`kfd.client.attachment.Link`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Set

import grimp
import pytest


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    return grimp.build_graph(
        "kfd", include_external_packages=False, exclude_type_checking_imports=False
    )


def circles(edges: Mapping[str, Set[str]]) -> Iterator[list[str]]:
    """The strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    yield sorted(component)


def test_the_circle_finder_finds_a_circle_and_nothing_else() -> None:
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert list(circles(edges)) == [["a", "b", "c"]]
    assert list(circles({"a": {"b"}, "b": set()})) == []


def test_no_module_of_kfd_is_in_an_import_circle(graph: grimp.ImportGraph) -> None:
    edges = {module: graph.find_modules_directly_imported_by(module) for module in graph.modules}
    found = list(circles(edges))
    report = []
    for component in found:
        members = set(component)
        for importer in component:
            for imported in sorted(edges[importer] & members):
                for detail in graph.get_import_details(importer=importer, imported=imported):
                    report.append(
                        f"{importer}:{detail['line_number']} {detail['line_contents'].strip()}"
                    )
    assert not found, "import circles in kfd:\n" + "\n".join(report)


@pytest.mark.parametrize(
    ("importer", "imported"),
    [
        ("kfd.triggers", "kfd.daemon"),  # the daemon runs the triggers
        ("kfd.agent", "kfd.daemon"),  # the daemon runs the sessions
        ("kfd.policy", "kfd.agent.session"),  # the gate takes a CallSite, not a Session
        ("kfd.agent.lifecycle", "kfd.agent.session"),  # the state machine is pure
    ],
)
def test_lower_layers_do_not_reach_up(
    graph: grimp.ImportGraph, importer: str, imported: str
) -> None:
    chain = graph.find_shortest_chain(importer=importer, imported=imported, as_packages=True)
    assert chain is None, f"{importer} reaches {imported}: {' -> '.join(chain or ())}"
