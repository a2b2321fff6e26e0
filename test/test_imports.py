# Copyright 2026 pointcam_ros maintainers
#
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#
#     http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS,
# WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and
# limitations under the License.

"""
No import loop anywhere in pointcam_ros (issue #24): its module import graph is acyclic.

The graph is read from the sources with :mod:`ast`, so an import hidden in a
function (the late import that used to hide the bag tool <-> fleet loop)
counts like one at the top of a module. An edge goes from a module to each
pointcam_ros module one of its import statements names: ``import a.b.c`` and
``from a.b import c`` name ``a.b.c`` when that is a module (else ``a.b``).
The parent packages that Python initialises on the way (``a`` and ``a.b``)
are not edges, as in other import-graph tools: a package's ``__init__`` may
re-export its submodules, which import each other by their full names.
"""

import ast
from pathlib import Path
from typing import Optional

PACKAGE = Path(__file__).resolve().parents[1] / 'pointcam_ros'
Graph = dict[str, set[str]]


def _module_name(path: Path, package: Path) -> str:
    parts = path.relative_to(package.parent).with_suffix('').parts
    return '.'.join(parts[:-1] if parts[-1] == '__init__' else parts)


def _resolve(name: str, modules: set[str]) -> Optional[str]:
    """Return the longest prefix of the dotted ``name`` that is one of ``modules``."""
    parts = name.split('.')
    for end in range(len(parts), 0, -1):
        prefix = '.'.join(parts[:end])
        if prefix in modules:
            return prefix
    return None


def _imported(module: str, is_package: bool, tree: ast.AST, modules: set[str]) -> set[str]:
    """Every module of ``modules`` that an import statement of ``tree`` names, at any depth."""
    named: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            named.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ''
            if node.level:  # relative: from the package of this module, up level - 1
                package = module.split('.') if is_package else module.split('.')[:-1]
                anchor = package[:len(package) - node.level + 1]
                base = '.'.join(anchor + ([base] if base else []))
            for alias in node.names:
                full = f'{base}.{alias.name}'
                named.add(full if full in modules else base)
    found = {_resolve(name, modules) for name in named}
    return {m for m in found if m is not None and m != module}


def import_graph(package: Path = PACKAGE) -> Graph:
    """Map each module of ``package`` to the modules of ``package`` it imports."""
    paths = {_module_name(p, package): p for p in sorted(package.rglob('*.py'))}
    modules = set(paths)
    return {name: _imported(name, path.name == '__init__.py', ast.parse(path.read_text()),
                            modules)
            for name, path in paths.items()}


def find_cycle(graph: Graph) -> list[str]:
    """Return a cycle of ``graph`` as ``[a, b, ..., a]``, or ``[]`` when it has none (DFS)."""
    done: set[str] = set()
    for root in sorted(graph):
        if root in done:
            continue
        path, on_path = [root], {root}
        stack = [iter(sorted(graph.get(root, ())))]
        while stack:
            child = next(stack[-1], None)
            if child is None:  # every edge of path[-1] explored: it is on no cycle
                stack.pop()
                done.add(path[-1])
                on_path.discard(path.pop())
            elif child in on_path:
                return path[path.index(child):] + [child]
            elif child not in done:
                path.append(child)
                on_path.add(child)
                stack.append(iter(sorted(graph.get(child, ()))))
    return []


def test_find_cycle_finds_loops_and_only_loops():
    assert find_cycle({'a': {'b'}, 'b': {'c'}, 'c': set()}) == []
    assert find_cycle({'a': {'b', 'c'}, 'b': {'d'}, 'c': {'d'}, 'd': set()}) == []  # a diamond
    assert find_cycle({'a': {'b'}, 'b': {'a'}}) == ['a', 'b', 'a']
    assert find_cycle({'a': {'b'}, 'b': {'c'}, 'c': {'d'}, 'd': {'b'}}) == ['b', 'c', 'd', 'b']
    assert find_cycle({'a': {'a'}}) == ['a', 'a']


def test_function_level_and_relative_imports_are_edges(tmp_path):
    package = tmp_path / 'pointcam_ros'
    (package / 'tools').mkdir(parents=True)
    for name in ('__init__.py', 'tools/__init__.py', 'tools/cli.py', 'tools/lib.py'):
        (package / name).write_text('')
    (package / 'tools' / 'lib.py').write_text(
        'def main():\n    from pointcam_ros.tools import cli\n')
    (package / 'tools' / 'cli.py').write_text('from . import lib\nfrom .lib import main\n')
    graph = import_graph(package)
    assert graph['pointcam_ros.tools.lib'] == {'pointcam_ros.tools.cli'}
    assert graph['pointcam_ros.tools.cli'] == {'pointcam_ros.tools.lib'}
    assert find_cycle(graph) == ['pointcam_ros.tools.cli', 'pointcam_ros.tools.lib',
                                 'pointcam_ros.tools.cli']


def test_the_graph_covers_the_whole_package():
    graph = import_graph()
    assert len(graph) == len(list(PACKAGE.rglob('*.py')))
    assert 'pointcam_ros.tools.fleet.schedule' in graph['pointcam_ros.tools.fleet']
    assert {'pointcam_ros.tools.bag_tool', 'pointcam_ros.tools.fleet'} <= \
        graph['pointcam_ros.tools.bag_cli']


def test_pointcam_ros_has_no_import_loop():
    cycle = find_cycle(import_graph())
    assert not cycle, 'import loop: ' + ' -> '.join(cycle)


def test_the_bag_tool_does_not_know_its_command_line_or_the_fleet():
    graph = import_graph()
    assert not {m for m in graph['pointcam_ros.tools.bag_tool']
                if m.startswith(('pointcam_ros.tools.fleet', 'pointcam_ros.tools.bag_cli'))}
