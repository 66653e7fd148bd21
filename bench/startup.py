"""Start-up and per-stage overhead of a local run: imports, time to the first executor, the
time each component spends outside its executor, and the end of the run; this checkout beside
another (e.g. main at an earlier commit), side by side in one run.

    python bench/startup.py [--before DIR] [--data-root DIR] [--per-class 20]
                            [--no-rerun] [--no-stage-imports] [--keep DIR] [-- runner flags]

For each checkout ("before" = --before, then "after" = this one), each in fresh processes with
that checkout first on the path:
  1. imports: `python -X importtime -c 'import M'` for local_runner and pipeline.pipeline (what
     building the pipeline loads): the import time summed by top-level package (tensorflow,
     tfx, apache_beam, tfdv, tft, tfma, ours, other), and the wall time of the same import
     without -X importtime (interpreter start included); unless --no-stage-imports, also each
     stage's executor module (and the Trainer's run_fn and Transform's preprocessing_fn
     modules), alone in a fresh process, in this checkout only (what a stage loads in its own
     container, e.g. on Kubeflow),
  2. a real run, `python local_runner.py --data-root D --work-dir W --no-cache` (run report
     included): from the process's start to the first executor's start, each component's time
     outside its executor (from the run log's records of TFX's launcher: "Component X is
     running." -> "Going to run a new execution: ..." is before the executor, "Execution N
     succeeded." -> "Component X is finished." after it, and from there to the next component's
     start is between components: our console's MLMD look-up runs there), and the end of the
     run (last component finished -> summary printed -> run report written -> process exit),
     and the time the process spent in garbage collection (gc.callbacks, set by a wrapper that
     runs local_runner.py as __main__),
  3. unless --no-rerun, the same command again in the same work dir without --no-cache: every
     component cached, so the whole run is overhead.

Data (default): 20 photos per class of ../shared/datasets/cats_and_dogs_filtered's train/ and
10 per class of its validation/ (hard links in a temporary folder), so a run takes minutes;
runs pass --accuracy-threshold 0 so that the model is pushed (40 photos do not reach 0.9).
The runs pass --weights (the shared weights file) so that a checkout outside /work still
finds them. The converted frozen base is cached (models/tflite_base.py) across runs and
checkouts: the first run of the bench may convert it. Prints tables; asserts nothing.
"""

import argparse
import collections
import datetime
import os
import pathlib
import re
import subprocess
import sys
import tempfile
import time

HERE = pathlib.Path(__file__).resolve().parents[1]
SHARED = HERE.parent / 'shared'
DEFAULT_SOURCE = SHARED / 'datasets' / 'cats_and_dogs_filtered'

OURS = ('local_runner', 'kubeflow_v2_runner', 'pipeline', 'components', 'models', 'reports',
        'runlog', 'pages', 'serving', 'serving_formats', 'monitoring')
GROUPS = {
    'tensorflow': ('tensorflow', 'tf_keras', 'keras', 'tensorboard', 'tensorflow_estimator',
                   'tensorflow_hub', 'tensorflow_serving', 'tensorflow_io'),
    'tfx': ('tfx', 'tfx_bsl', 'ml_metadata', 'ml_pipelines_sdk'),
    'apache_beam': ('apache_beam',),
    'tfdv': ('tensorflow_data_validation', 'tensorflow_metadata'),
    'tft': ('tensorflow_transform',),
    'tfma': ('tensorflow_model_analysis',),
    'ours': OURS,
}
COLUMNS = (*GROUPS, 'other')

# The stages' modules, found by building the pipeline in the checkout (printed one a line).
_STAGE_MODULES = r'''
import sys
import local_runner
from pipeline import configs
from pipeline import pipeline
config = local_runner.build_config(local_runner.parse_args(sys.argv[1:]))
built = pipeline.create_pipeline(config)
seen = []
for component in built.components:
    spec = getattr(component, 'executor_spec', None)
    cls = getattr(spec, 'executor_class', None)
    if cls is not None and not cls.__module__.startswith('tfx.dsl.'):  # the resolver
        seen.append((component.id, cls.__module__))
seen.append(('Trainer run_fn', configs.RUN_FN.rsplit('.', 1)[0]))
seen.append(('Transform preprocessing_fn', configs.PREPROCESSING_FN.rsplit('.', 1)[0]))
for node, module in seen:
    print('STAGE', node, module)
'''

# Runs local_runner.py as __main__ and prints the time garbage collection took (all
# generations, then full collections) once it exits.
_GC_WRAPPER = r'''
import gc, runpy, sys, time
spent, since = [0.0, 0.0], [0.0]
def timer(phase, info):
    if phase == 'start':
        since[0] = time.perf_counter()
        return
    spent[0] += time.perf_counter() - since[0]
    if info['generation'] == 2:
        spent[1] += time.perf_counter() - since[0]
gc.callbacks.append(timer)
sys.argv = sys.argv[1:]
try:
    runpy.run_path(sys.argv[0], run_name='__main__')
finally:
    print('GCSTATS', *spent, flush=True)
'''
_LOG_LINE = re.compile(r'^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) \w+ \S+\] (.*)$')
_EVENTS = (
    ('start', re.compile(r'^Component (\S+) is running\.$')),
    ('exec_start', re.compile(r'^Going to run a new execution: ')),
    ('exec_end', re.compile(r'^Execution \d+ succeeded\.$')),
    ('cached', re.compile(r'^A cached execution \d+ is used\.$')),
    ('end', re.compile(r'^Component (\S+) is finished\.$')),
)


def make_data(dest: pathlib.Path, source: pathlib.Path, per_class: int) -> pathlib.Path:
    """per_class train photos and per_class // 2 validation photos of each class of source."""
    for split, count in (('train', per_class), ('validation', max(per_class // 2, 2))):
        for class_dir in sorted((source / split).iterdir()):
            if not class_dir.is_dir():
                continue
            for photo in sorted(class_dir.iterdir())[:count]:
                target = dest / split / class_dir.name / photo.name
                target.parent.mkdir(parents=True, exist_ok=True)
                try:
                    os.link(photo, target)
                except OSError:
                    target.write_bytes(photo.read_bytes())
    return dest


def child_env(tree: pathlib.Path) -> dict:
    env = dict(os.environ, PYTHONPATH=str(tree), TF_CPP_MIN_LOG_LEVEL='2')
    env.pop('PYTHONDONTWRITEBYTECODE', None)
    return env


def group_of(module: str) -> str:
    top = module.strip().split('.')[0]
    for group, tops in GROUPS.items():
        if top in tops:
            return group
    return 'other'


def import_times(tree: pathlib.Path, module: str, wall: bool = True):
    """(seconds by group, top other packages, wall seconds of a plain import or nan) of
    `import module` in a fresh process of the checkout."""
    code = f'import {module}'
    result = subprocess.run([sys.executable, '-X', 'importtime', '-c', code], cwd=tree,
                            env=child_env(tree), capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f'import {module} failed in {tree}:\n{result.stderr[-2000:]}')
    by_group = collections.Counter()
    other = collections.Counter()
    for line in result.stderr.splitlines():
        if not line.startswith('import time:') or 'self [us]' in line:
            continue
        _, self_us, _, name = re.split(r'\s*[:|]\s*', line, maxsplit=3)
        group = group_of(name)
        by_group[group] += int(self_us) / 1e6
        if group == 'other':
            other[name.strip().split('.')[0]] += int(self_us) / 1e6
    if not wall:
        return by_group, other, float('nan')
    start = time.perf_counter()
    subprocess.run([sys.executable, '-c', code], cwd=tree, env=child_env(tree), check=True,
                   capture_output=True)
    return by_group, other, time.perf_counter() - start


def stage_modules(tree: pathlib.Path, runner_args):
    result = subprocess.run([sys.executable, '-c', _STAGE_MODULES, *runner_args], cwd=tree,
                            env=child_env(tree), capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f'building the pipeline failed in {tree}:\n{result.stderr[-2000:]}')
    stages = collections.OrderedDict()
    for line in result.stdout.splitlines():
        if line.startswith('STAGE '):
            _, node, module = line.split(' ')[:1] + line[6:].rsplit(' ', 1)
            stages.setdefault(module, []).append(node)
    return stages


def _epoch(stamp: str) -> float:
    return datetime.datetime.strptime(stamp, '%Y-%m-%d %H:%M:%S,%f').timestamp()


def parse_log(path: pathlib.Path):
    """[(node, {event: epoch seconds})] in run order, from the run log's launcher records."""
    nodes, current = [], None
    for line in path.read_text(errors='replace').splitlines():
        match = _LOG_LINE.match(line)
        if not match:
            continue
        stamp, message = _epoch(match.group(1)), match.group(2)
        for event, pattern in _EVENTS:
            found = pattern.match(message)
            if not found:
                continue
            if event == 'start':
                current = {'start': stamp}
                nodes.append((found.group(1), current))
            elif current is not None:
                current.setdefault(event, stamp)
            break
    return nodes


def run_pipeline(tree: pathlib.Path, runner_args, work: pathlib.Path, *, cache: bool):
    """Runs local_runner.py; returns its timings (epoch seconds) and the log's node records."""
    logs = work / 'logs'
    before = set(logs.glob('*.log')) if logs.exists() else set()
    command = [sys.executable, '-c', _GC_WRAPPER, str(tree / 'local_runner.py'), *runner_args,
               '--work-dir', str(work), *([] if cache else ['--no-cache'])]
    lines = []
    start = time.time()
    with subprocess.Popen(command, cwd=tree, env=child_env(tree), stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT) as proc:
        for raw in iter(proc.stdout.readline, b''):
            lines.append((time.time(), raw.decode(errors='replace').rstrip('\n')))
        code = proc.wait()
    end = time.time()
    log = sorted(set(logs.glob('*.log')) - before)
    if code != 0 or not log:
        tail = '\n'.join(text for _, text in lines[-15:])
        raise RuntimeError(f'{" ".join(command)} exited with {code}:\n{tail}')
    stamps = {}
    for stamp, text in lines:
        if text.startswith('GCSTATS '):
            stamps['gc'] = [float(v) for v in text.split()[1:]]
        for key, prefix in (('summary', 'eval accuracy'), ('report', 'run report:'),
                            ('finished', 'pipeline finished')):
            if text.startswith(prefix) or (key == 'summary' and text.startswith('data validation')):
                stamps.setdefault(key, stamp)
    return {'start': start, 'end': end, **stamps}, parse_log(log[-1])


def run_figures(times, nodes):
    """Rows (name, seconds) of a run, and per node (node, state, before, executor, after,
    gap to the next node)."""
    per_node = []
    for i, (node, t) in enumerate(nodes):
        following = nodes[i + 1][1]['start'] if i + 1 < len(nodes) else None
        end = t.get('end', t['start'])
        if 'exec_start' in t and 'exec_end' in t:
            row = (node, 'ran', t['exec_start'] - t['start'], t['exec_end'] - t['exec_start'],
                   end - t['exec_end'])
        else:
            row = (node, 'cached' if 'cached' in t else 'no executor', end - t['start'], 0.0,
                   0.0)
        per_node.append((*row, (following - end) if following else 0.0))
    first_exec = min((t['exec_start'] for _, t in nodes if 'exec_start' in t), default=None)
    last_end = max(t.get('end', t['start']) for _, t in nodes)
    outside = sum(r[2] + r[4] + r[5] for r in per_node)
    inside = sum(r[3] for r in per_node)
    rows = [
        ('process start -> first component starts', nodes[0][1]['start'] - times['start']),
        ('process start -> first executor starts',
         (first_exec - times['start']) if first_exec else float('nan')),
        ('in executors (sum)', inside),
        ('outside executors, between first and last component (sum)', outside),
        ('last component finished -> summary printed',
         times.get('summary', times['end']) - last_end),
        ('summary -> run report written',
         times.get('report', times['end']) - times.get('summary', times['end'])),
        ('run report -> process exit', times['end'] - times.get('report', times['end'])),
        ('whole run (process start -> exit)', times['end'] - times['start']),
        ('garbage collection, all generations (sum)', times.get('gc', [float('nan')] * 2)[0]),
        ('... of which full (generation 2) collections', times.get('gc', [float('nan')] * 2)[1]),
    ]
    return rows, per_node


def table(header, rows, fmt='{:.2f}'):
    widths = [max(len(str(c)) for c in col) for col in zip(header, *[
        [r[0], *[fmt.format(v) if isinstance(v, float) else str(v) for v in r[1:]]]
        for r in rows])]
    def line(cells):
        return '| ' + ' | '.join(str(c).ljust(w) for c, w in zip(cells, widths)) + ' |'
    print(line(header))
    print('|' + '|'.join('-' * (w + 2) for w in widths) + '|')
    for r in rows:
        print(line([r[0], *[fmt.format(v) if isinstance(v, float) else str(v) for v in r[1:]]]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--before', type=pathlib.Path,
                        help='another checkout to compare with (measured first)')
    parser.add_argument('--data-root', type=pathlib.Path,
                        help='photos to run on (default: a small subset, see above)')
    parser.add_argument('--per-class', type=int, default=20)
    parser.add_argument('--no-rerun', action='store_true', help='skip the cached rerun')
    parser.add_argument('--no-stage-imports', action='store_true')
    parser.add_argument('--keep', type=pathlib.Path, help='work folder to keep (default: temp)')
    parser.add_argument('runner_args', nargs='*', help='more local_runner.py flags (after --)')
    args = parser.parse_args()
    trees = ([('before', args.before.resolve())] if args.before else []) + [('after', HERE)]
    scratch = args.keep or pathlib.Path(tempfile.mkdtemp(prefix='startup-bench-'))
    scratch.mkdir(parents=True, exist_ok=True)
    data_root = args.data_root or make_data(scratch / 'data', DEFAULT_SOURCE, args.per_class)
    weights = subprocess.run([sys.executable, '-c', 'from pipeline import configs; '
                              'print(configs.SHARED_WEIGHTS)'], cwd=HERE, env=child_env(HERE),
                             capture_output=True, text=True, check=True).stdout.strip()
    # --accuracy-threshold 0: 40 photos train no model to 0.9, and the push should run too.
    runner_args = ['--data-root', str(data_root), '--weights', weights,
                   '--accuracy-threshold', '0', *args.runner_args]
    print(f'data: {data_root} ({sum(1 for p in pathlib.Path(data_root).rglob("*") if p.is_file())}'
          f' files); runner flags: {" ".join(runner_args)}')
    for name, tree in trees:
        commit = subprocess.run(['git', 'rev-parse', '--short', 'HEAD'], cwd=tree,
                                capture_output=True, text=True, check=False).stdout.strip()
        print(f'{name}: {tree} {commit or "(not a git checkout)"}')
    print(f'load before: {os.getloadavg()}')

    imports, runs = {}, {}
    modules = collections.OrderedDict([('local_runner', ['runner']),
                                       ('pipeline.pipeline', ['pipeline build'])])
    if not args.no_stage_imports:
        for module, users in stage_modules(
                trees[-1][1], [*runner_args, '--work-dir', str(scratch / 'work-build')]).items():
            modules.setdefault(module, []).extend(users)
    for name, tree in trees:
        for module in modules:
            if module in ('local_runner', 'pipeline.pipeline') or name == 'after':
                imports[name, module] = import_times(tree, module, wall=module == 'local_runner'
                                                     or module == 'pipeline.pipeline')
    for name, tree in trees:
        work = scratch / f'work-{name}'
        runs[name, 'fresh'] = run_figures(*run_pipeline(tree, runner_args, work, cache=False))
        if not args.no_rerun:
            runs[name, 'cached'] = run_figures(*run_pipeline(tree, runner_args, work, cache=True))
    print(f'load after: {os.getloadavg()}\n')

    print('Import time by package, seconds (python -X importtime; wall = plain `python -c '
          'import M`, interpreter start included):\n')
    rows = []
    for module, users in modules.items():
        for name, _ in trees:
            if (name, module) not in imports:
                continue
            by_group, _, wall = imports[name, module]
            rows.append((f'{module} ({", ".join(users)}) {name}',
                         *[by_group.get(c, 0.0) for c in COLUMNS],
                         sum(by_group.values()), wall))
    table(('module (stage) checkout', *COLUMNS, 'total', 'wall'), rows)
    for name, _ in trees:
        other = imports[name, 'local_runner'][1]
        print(f'\n{name}: largest "other" packages under local_runner: ' + ', '.join(
            f'{top} {sec:.2f}' for top, sec in other.most_common(6)))

    for kind in ('fresh', 'cached'):
        present = [name for name, _ in trees if (name, kind) in runs]
        if not present:
            continue
        print(f'\nRun ({kind}{", --no-cache" if kind == "fresh" else ": every component cached"}'
              '), seconds:\n')
        labels = [r[0] for r in runs[present[0], kind][0]]
        table(('', *present), [(label, *[dict(runs[n, kind][0])[label] for n in present])
                               for label in labels])
        print(f'\nPer component ({kind}): outside its executor = before + after + gap to the '
              'next component; executor in brackets:\n')
        per = {n: {r[0]: r for r in runs[n, kind][1]} for n in present}
        order = [r[0] for r in runs[present[-1], kind][1]]
        rows = []
        for node in order:
            cells = []
            for n in present:
                r = per[n].get(node)
                cells += ([r[2], r[4], r[5], f'{r[2] + r[4] + r[5]:.2f} [{r[3]:.1f}]']
                          if r else ['-'] * 4)
            rows.append((node, *cells))
        table(('component', *[f'{n} {c}' for n in present
                              for c in ('before exec', 'after exec', 'gap', 'outside [exec]')]),
              rows)
    print(f'\nwork folders: {scratch}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
