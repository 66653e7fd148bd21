"""The shape of the code: imports, who opens artifacts' files, sizes.

The import graph between our top-level packages has no cycle and points one way:
runners -> reports -> pipeline -> components -> models -> runlog; serving uses only models,
runlog and serving_formats (TF Serving's file formats and the request log's, shared with the Pusher
and the monitor); monitoring (offline jobs over request logs) uses only models, runlog,
serving_formats and pages, never the server nor the pipeline; pages (HTML and pictures) and runlog
import nothing of ours.

Each command (`python -m <module>` in README.md and docs/) has one home: the module that
defines its `main`; no module re-exports another's `main` under a second name.

An artifact's JSON files are read only in components/ and reports/ (JSON_READERS lists the
exceptions and why); local_runner.py stays a runner; no module in models/ grows past
MAX_MODEL_MODULE_LINES.
"""

import ast
import collections
import pathlib
import re

import pytest

from tests import data

RUNNERS = ('local_runner', 'kubeflow_v2_runner')
# Package -> the packages of ours it may import.
ALLOWED = {
    'runlog': set(),
    'pages': set(),
    'models': {'runlog'},
    'serving_formats': {'models'},
    'components': {'models', 'runlog', 'pages', 'serving_formats'},
    'pipeline': {'components', 'models', 'runlog'},
    'reports': {'pipeline', 'components', 'models', 'runlog', 'pages'},
    'serving': {'models', 'runlog', 'serving_formats'},
    'monitoring': {'models', 'runlog', 'serving_formats', 'pages'},
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


DOCS = ('README.md', 'docs/*.md')
OTHER_COMMANDS = {'pytest', 'pip', 'venv'}   # `python -m` modules that are not ours


def documented_commands():
    """Module -> its file in this project, for every `python -m <module>` the docs show
    (a module that is not ours and not in OTHER_COMMANDS maps to a file that does not exist)."""
    found = {}
    for pattern in DOCS:
        for doc in sorted(data.PROJECT_ROOT.glob(pattern)):
            for name in re.findall(r'python -m ([A-Za-z_][\w.]*)', doc.read_text()):
                if name.split('.')[0] not in OTHER_COMMANDS:
                    path = data.PROJECT_ROOT.joinpath(*name.split('.'))
                    found[name] = (path / '__main__.py' if path.is_dir()
                                   else path.with_suffix('.py'))
    return found


def test_each_command_has_one_home():
    commands = documented_commands()
    assert 'serving_formats.version_labels' in commands and 'serving_formats.rollback' in commands
    missing = sorted(name for name, path in commands.items() if not path.is_file())
    assert missing == []
    no_main = sorted(name for name, path in commands.items()
                     if 'main' not in {node.name for node in ast.parse(path.read_text()).body
                                       if isinstance(node, ast.FunctionDef)})
    assert no_main == []
    # A stub that imports another module's main would give a command a second name.
    stubs = [path for path in _our_modules()
             if any(isinstance(node, ast.ImportFrom) and 'main' in {a.name for a in node.names}
                    for node in ast.walk(ast.parse((data.PROJECT_ROOT / path).read_text())))]
    assert stubs == []


# Who may call json.load / json.loads (issue 34). A component owns the reader of its own
# output files, beside its spec (components/<stage>/spec.py: read_report, read_verdict,
# read_push_result, ...); components open their declared inputs with those readers and
# reports/ (the run report, the console summary) open artifacts with them. Runners, pipeline/
# and the others never read an artifact's file themselves. Outside components/ and reports/,
# only these modules parse JSON, each for the reason given:
FORMAT = ('defines a file format that code run inside a component writes into an artifact '
          "(the Trainer's run_fn, DataQuality, ReferenceProfile): its reader stays beside its "
          'writer, and the callers that open an artifact with it are components and reports/')
JSON_READERS = {
    'models/frozen_features.py': FORMAT,        # FrozenFeatures: DataQuality -> the Trainer
    'models/eval_answers.py': FORMAT,           # eval_answers.json in the Trainer's model_run
    'models/history.py': FORMAT,                # history.json in the Trainer's model_run
    'models/profile.py': FORMAT,                # reference_profile.json (ReferenceProfile)
                                                # (the monitor reads a pushed version's copy)
    'models/hyperparameters.py': ("best_hyperparameters.txt, KerasTuner's format as TFX's "
                                  "Tuner writes it: read by the Trainer's run_fn, and by the "
                                  'runner for --hyperparameters, a file the user names'),
    'kubeflow_v2_runner.py': 'the pipeline spec it has just compiled (not an artifact)',
    'monitoring/traffic.py': "the server's request log (not an artifact)",
    'serving/json_tensor.py': 'REST request bodies',
    'bench/pipeline_vs_notebook.py': 'the result files of bench/forward_limit.py and '
                                     'bench/notebook_peer.py (not artifacts)',
    'bench/scale.py': 'the result file of its own child process (not an artifact)',
    'bench/ingest_speed.py': 'the TIMES line its child prints (not an artifact)',
}
# Scanned: every package of ours, the runners and bench/. Not tests/: a writer's test reads
# the raw file it checks.
ARTIFACT_READER_ROOTS = ('components', 'reports')
MAX_RUNNER_LINES = 150            # the template's local_runner.py is about 80
MAX_MODEL_MODULE_LINES = 300      # the template's models/keras_model/model.py is about 220


def _our_modules():
    """Paths (relative to the project) of the modules the JSON rule covers."""
    roots = [data.PROJECT_ROOT / f'{runner}.py' for runner in RUNNERS]
    for folder in [*(set(ALLOWED) - set(RUNNERS)), 'bench']:
        roots += sorted((data.PROJECT_ROOT / folder).rglob('*.py'))
    return [path.relative_to(data.PROJECT_ROOT).as_posix() for path in roots]


def json_calls(path: str, functions=('load', 'loads')):
    """Line numbers of the calls to json.<function> in a module (any import form)."""
    tree = ast.parse((data.PROJECT_ROOT / path).read_text(), path)
    modules, names = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules |= {alias.asname or alias.name for alias in node.names
                        if alias.name == 'json'}
        elif isinstance(node, ast.ImportFrom) and node.module == 'json':
            names |= {alias.asname or alias.name for alias in node.names
                      if alias.name in functions}
    return [node.lineno for node in ast.walk(tree) if isinstance(node, ast.Call) and (
        isinstance(node.func, ast.Attribute) and node.func.attr in functions
        and isinstance(node.func.value, ast.Name) and node.func.value.id in modules
        or isinstance(node.func, ast.Name) and node.func.id in names)]


def test_only_components_and_reports_read_artifact_json():
    readers = {path: lines for path in _our_modules()
               if not path.startswith(tuple(f'{root}/' for root in ARTIFACT_READER_ROOTS))
               and (lines := json_calls(path))}
    assert {path: lines for path, lines in readers.items() if path not in JSON_READERS} == {}
    # Every exception is still needed (a stale one would let a new reader in unseen).
    assert sorted(set(JSON_READERS) - set(readers)) == []


def test_a_format_reader_lives_beside_its_writer():
    formats = [path for path, why in JSON_READERS.items() if why == FORMAT]
    assert formats and all(path.startswith('models/') for path in formats)
    assert [path for path in formats if not json_calls(path, ('dump', 'dumps'))] == []


def test_local_runner_stays_a_runner():
    lines = (data.PROJECT_ROOT / 'local_runner.py').read_text().splitlines()
    assert len(lines) <= MAX_RUNNER_LINES
    assert json_calls('local_runner.py') == []


def test_no_model_module_is_long():
    long = {path.name: length for path in sorted((data.PROJECT_ROOT / 'models').glob('*.py'))
            if (length := len(path.read_text().splitlines())) > MAX_MODEL_MODULE_LINES}
    assert long == {}
