"""The package's modules import one another without cycles.

Every import counts, at top level or inside a function: a cycle hidden in a function still
ties the modules together (neither can be read, tested or changed without the other).  The
graph is read from the source with ast, so nothing is imported to build it.
"""

import ast
import pathlib

PACKAGE = "fastrnn"
ROOT = pathlib.Path(__file__).resolve().parent.parent / PACKAGE


def module_names():
    """{module name: path} of every .py file under the package (its __init__ is the package)."""
    names = {}
    for path in sorted(ROOT.rglob("*.py")):
        parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        names[".".join(parts)] = path
    return names


def compiled_names():
    """Names of the package's extension modules (.pyx): imported, never importing."""
    return {".".join(path.relative_to(ROOT.parent).with_suffix("").parts)
            for path in ROOT.rglob("*.pyx")}


def imported(name, path, known):
    """The package-internal modules that module `name` imports, each with a line number.

    ``from fastrnn import x`` imports fastrnn.x when x is a module, else the package itself;
    relative imports are resolved against the module's package."""
    is_package = path.name == "__init__.py"
    package = name if is_package else name.rpartition(".")[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module
            targets = []
            for alias in node.names:
                sub = f"{source}.{alias.name}"
                targets.append(sub if sub in known else source)
        else:
            continue
        for target in targets:
            if target == PACKAGE or target.startswith(PACKAGE + "."):
                out.append((target, node.lineno))
    return out


def import_graph():
    """{module: {imported module: line}} over the package's .py modules."""
    names = module_names()
    known = set(names) | compiled_names()
    graph = {}
    for name, path in names.items():
        edges = graph.setdefault(name, {})
        for target, line in imported(name, path, known):
            if target != name:
                edges.setdefault(target, line)
    return graph


def strongly_connected(graph):
    """The strongly connected components of graph (Tarjan), each a sorted list."""
    index, low, stack, on_stack, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def shortest_cycle(graph, start, members):
    """The shortest import path from start back to start inside members (breadth first)."""
    paths, seen = [[start]], {start}
    while paths:
        new = []
        for path in paths:
            for w in sorted(graph.get(path[-1], ())):
                if w == start:
                    return path + [start]
                if w in members and w not in seen:
                    seen.add(w)
                    new.append(path + [w])
        paths = new
    return None


def cycles(graph):
    """Every cycle, named as a path "a -> b -> a": one through each module of each
    strongly connected component, each cycle once."""
    found = []
    for component in strongly_connected(graph):
        members = set(component)
        if len(component) == 1 and component[0] not in graph.get(component[0], ()):
            continue
        for module in component:
            cycle = shortest_cycle(graph, module, members)
            # the same cycle seen from another of its modules: name it once
            turn = cycle.index(min(cycle[:-1]))
            canonical = cycle[turn:-1] + cycle[:turn] + [cycle[turn]]
            if canonical not in found:
                found.append(canonical)
    return found


def test_the_graph_sees_imports_inside_functions():
    graph = import_graph()
    assert "fastrnn.layers.base" in graph["fastrnn.layers.lstm"]          # sanity: edges are found
    assert "fastrnn._validation" in graph["fastrnn.layers.base"]


def test_no_module_imports_a_module_that_imports_it():
    graph = import_graph()
    found = cycles(graph)
    assert not found, "import cycles:\n" + "\n".join(
        " -> ".join(f"{m} (line {graph[m][n]})" if n else m
                    for m, n in zip(cycle, cycle[1:] + [None])) for cycle in found)


def test_no_submodule_imports_the_package_itself():
    graph = import_graph()
    offenders = [f"{name} (line {edges[PACKAGE]})" for name, edges in sorted(graph.items())
                 if name != PACKAGE and PACKAGE in edges]
    assert not offenders, ("these modules import the package fastrnn itself (import the "
                           "submodule that defines the name instead): " + ", ".join(offenders))
