"""ImageExampleGen's own work, this checkout beside another (e.g. main), side by side.

    python bench/ingest_speed.py --before /work/main [--data-root DIR] [--rounds 3]
                                 [--layout presplit|classes]

Times, on one data root (default ../shared/datasets/cats_and_dogs_filtered, 3,000
photos, pre-split; --layout classes: its train/ and validation/ class folders
linked into one <class>/ root, which the executor splits by content hash), what a
run spends on the data before StatisticsGen: the runner's check of the root
(`layout.inspect_data_root`, counting up to 20,001 images as local_runner does),
the driver's fingerprint of every file (`driver.tree_fingerprint`) and the
executor (`Executor.Do`: list, read, check, split, write the TFRecords and the
report; wall time, and its CPU time (the DirectRunner runs in the process),
which other load on a shared machine disturbs less), each in a fresh process per
side and round (TensorFlow imported before the clock starts), the two sides
alternating so that the machine's drift falls on both. Prints each side's times
per round, the medians and the ratio this checkout / --before. Prints numbers;
asserts nothing.
"""

import argparse
import json
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile

HERE = pathlib.Path(__file__).resolve().parents[1]
DEFAULT_ROOT = HERE.parent / 'shared' / 'datasets' / 'cats_and_dogs_filtered'
STEPS = ('inspect', 'fingerprint', 'executor', 'executor CPU')

# Runs in the checkout under test (its own modules first on the path); the same calls
# exist on both sides.
_CHILD = r'''
import json, sys, time
import tensorflow as tf
from google.protobuf import message
from tfx.types import standard_artifacts
from tfx.utils import proto_utils
from components.image_example_gen import component, driver, executor, layout
root, out, presplit = sys.argv[1], sys.argv[2], sys.argv[3] == 'presplit'
times = {}
start = time.perf_counter()
checked = layout.inspect_data_root(root, count_up_to=20_001)
times['inspect'] = time.perf_counter() - start
start = time.perf_counter()
driver.tree_fingerprint(root)
times['fingerprint'] = time.perf_counter() - start
gen = component.ImageExampleGen(root, checked.class_names, presplit=presplit)
exec_properties = {k: proto_utils.proto_to_json(v) if isinstance(v, message.Message) else v
                   for k, v in gen.exec_properties.items() if v is not None}
examples = standard_artifacts.Examples()
examples.uri = out
start, cpu = time.perf_counter(), time.process_time()
executor.Executor().Do({}, {'examples': [examples]}, exec_properties)
times['executor'] = time.perf_counter() - start
times['executor CPU'] = time.process_time() - cpu
with open(out + '/image_report.json') as f:
    times['images'] = json.load(f)['images']
print('TIMES ' + json.dumps(times))
'''


def _classes_root(source: pathlib.Path, dest: pathlib.Path) -> pathlib.Path:
    """source's train/ and validation/ class folders as one <class>/ root of hard links."""
    for split in ('train', 'validation'):
        for folder in sorted((source / split).iterdir()):
            (dest / folder.name).mkdir(parents=True, exist_ok=True)
            for photo in folder.iterdir():
                os.link(photo, dest / folder.name / f'{split}-{photo.name}')
    return dest


def _run(checkout: pathlib.Path, root: str, out: str, layout: str) -> dict:
    env = {**os.environ, 'PYTHONPATH': str(checkout), 'TF_CPP_MIN_LOG_LEVEL': '2'}
    result = subprocess.run([sys.executable, '-c', _CHILD, root, out, layout], cwd=checkout,
                            env=env, capture_output=True, text=True, check=False)
    line = next((line for line in result.stdout.splitlines() if line.startswith('TIMES ')),
                None)
    if result.returncode or line is None:
        raise RuntimeError(f'{checkout}: {result.stderr[-3000:]}')
    return json.loads(line[len('TIMES '):])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--before', required=True, help='the other checkout, e.g. /work/main')
    parser.add_argument('--data-root', default=str(DEFAULT_ROOT))
    parser.add_argument('--rounds', type=int, default=3)
    parser.add_argument('--layout', choices=('presplit', 'classes'), default='presplit')
    args = parser.parse_args()
    sides = {'before': pathlib.Path(args.before).resolve(), 'after': HERE}
    with tempfile.TemporaryDirectory() as temp:
        root = args.data_root
        if args.layout == 'classes':
            root = str(_classes_root(pathlib.Path(root), pathlib.Path(temp) / 'root'))
        found = {side: [] for side in sides}
        for round_ in range(args.rounds):
            for side, checkout in sides.items():
                times = _run(checkout, root, os.path.join(temp, f'{side}-{round_}'),
                             args.layout)
                found[side].append(times)
                print(f'round {round_ + 1} {side:6s} ' + ', '.join(
                    f'{step} {times[step]:.2f} s' for step in STEPS)
                    + f" ({times['images']} images)", flush=True)
    print(f'data root: {args.data_root} ({args.layout}); medians of {args.rounds} rounds:')
    for step in STEPS:
        before, after = (statistics.median(t[step] for t in found[side]) for side in sides)
        print(f'  {step:12s} before {before:7.2f} s  after {after:7.2f} s  '
              f'after / before {after / before:.2f}x')


if __name__ == '__main__':
    main()
