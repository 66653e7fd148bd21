"""The import graph between our top-level packages has no cycle and points one way.

runners -> reports -> pipeline -> components -> models -> runlog; serving uses only models,
runlog and tfserving (TF Serving's file formats and the request log's, shared with the Pusher
and the monitor); monitoring (offline jobs over request logs) uses only models, runlog,
tfserving and pages, never the server nor the pipeline; pages (HTML and pictures) and runlog
import nothing of ours.
"""

import ast
import collections
import pathlib

from tests import data

RUNNERS = ('local_runner', 'kubeflow_v2_runner')
# Package -> the packages of ours it may import.
ALLOWED = {
    'runlog': set(),
    'pages': set(),
    'models': {'runlog'},
    'tfserving': {'models'},
    'components': {'models', 'runlog', 'pages', 'tfserving'},
    'pipeline': {'components', 'models', 'runlog'},
    'reports': {'pipeline', 'components', 'models', 'runlog', 'pages'},
    'serving': {'models', 'runlog', 'tfserving'},
    'monitoring': {'models', 'runlog', 'tfserving', 'pages'},
    'local_runner': {'pipeline', 'components', 'models', 'reports', 'runlog'},
    'kubeflow_v2_runner': {'pipeline', 'components', 'models', 'runlog'},
}


def import_graph():
    """Package -> {imported package of ours: a file that imports it} (every import statement,
    also those inside functions)."""
    graph = collections.defaultdict(dict)
    for package in ALLOWED:
        module = data.PROJECT_ROOT / f'{package}.py'
        files = [module] if module.exists() else sorted(
            (data.PROJECT_ROOT / package).rglob('*.py'))
        for path in files:
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                else:
                    continue
                for name in names:
                    top = name.split('.')[0]
                    if top in ALLOWED and top != package:
                        graph[package].setdefault(top, str(path.relative_to(data.PROJECT_ROOT)))
    return graph


def test_every_package_is_known():
    found = {p.name for p in data.PROJECT_ROOT.iterdir()
             if p.is_dir() and (p / '__init__.py').exists() and p.name != 'tests'}
    assert found == set(ALLOWED) - set(RUNNERS)


def test_imports_point_one_way():
    graph = import_graph()
    wrong = [f'{package} imports {target} ({path})' for package, targets in graph.items()
             for target, path in targets.items() if target not in ALLOWED[package]]
    assert wrong == []


def test_no_cycle():
    graph = import_graph()
    state = {}

    def visit(node, trail):
        if state.get(node) == 'open':
            raise AssertionError(' -> '.join(trail + [node]))
        if state.get(node) == 'done':
            return
        state[node] = 'open'
        for target in graph.get(node, {}):
            visit(target, trail + [node])
        state[node] = 'done'

    for package in ALLOWED:
        visit(package, [])
