"""How each component's time and memory grow with the number of photos.

    python bench/scale.py [--sizes 500,1000,2000,4000] [--epochs 1] [--source DIR]
                          [--layout presplit|classes] [--quick] [--keep] [--interval 0.2]
    python bench/scale.py --one-size N [--data-root DIR] [--json PATH]   (one size)

Runs the whole pipeline (LocalDagRunner, no cache, the default settings, the
accuracy gate off so every run is pushed) once per size, each size in a fresh
process of this script (--one-size), so memory does not carry over from one size
to the next and every size pays the same TensorFlow import. A size N is N
training photos plus N/5 eval photos (20% more) in a pre-split root
(train/<class>/, validation/<class>/, balanced classes; --layout classes: the
same photos in <class>/ folders only, which the pipeline splits per class by
content hash, 20% of each class to eval), built under a temporary
folder from --source (default ../shared/datasets/cats_and_dogs_filtered, train/
and validation/ pooled: 3,000 photos). The originals are divided once into a
train pool and an eval pool (5:1, seeded); a size takes the first photos of each
pool, so a larger size holds every photo of a smaller one. Beyond what a pool
holds, new photos are made from its originals by a small random crop (1-6% a
side) and a horizontal flip half the time, re-encoded as JPEG (quality 90),
seeded and deterministic, every one with new bytes (sha256); so no photo is in
both splits and the data checks pass. Originals are hard links. --quick runs
sizes 100 and 200, to check that the script works. --keep keeps the temporary
folder (data roots, pipeline outputs, logs).

Measures, per component: a sampler thread (every --interval s, and at every
component's start and end) records the resident memory (RSS) and the cumulative
CPU time (user + system) of the whole process tree: this process and its
children (Beam's workers, TFX's packaging of the user code). CPU time of
processes that have exited is kept: each live process counts its own time plus
that of its children it has reaped. A component's window is the time between
LocalDagRunner's "Component X is running." and "... is finished." records
(driver, executor and publishing); its wall time is the window's length, its
CPU time the tree's CPU time over the window, its peak memory the largest tree
RSS sampled inside it (memory an earlier component still holds counts too; see
own memory below). Also: the time between components, the whole run, and the
RSS before the run (TFX imported).

Prints, per component and size, wall s, CPU s and peak GiB; then per component
the average seconds per 1,000 images (train + eval) at the largest size, the
marginal seconds per 1,000 images between the two largest sizes, the exponents
b of power laws y = a * n^b fitted by least squares on log-log (n = images) of
wall time and of CPU time, the peak's growth from the smallest size to the
largest, and the component's own memory: its peak minus the tree's RSS at its
start (what an earlier component still holds is not its doing), with its growth
(MB, MB per 1,000 images) and exponent. Closes with "grows:", naming every
component whose wall-time exponent exceeds 1.15 (with at least 2 s at the
largest size; the line also gives the CPU exponent, as on a shared machine wall
time includes waiting), or whose own memory grows by more than 100 MB from the
smallest size to the largest with an exponent above 0.3 or, over three sizes or
more, rising at every size (a large fixed part, such as Beam's workers, keeps
the exponent of a linear growth low). Prints numbers; asserts nothing.
"""

import argparse
import hashlib
import io
import json
import logging
import os
import pathlib
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Dict, List, Optional

import numpy as np

PROJECT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, PROJECT)

from bench import photos  # pylint: disable=wrong-import-position
from bench import tree_sampler  # pylint: disable=wrong-import-position

DEFAULT_SIZES = (500, 1000, 2000, 4000)
QUICK_SIZES = (100, 200)
EVAL_SHARE = 0.2            # eval photos per training photo
POOL_EVAL_SHARE = 1 / 6     # of each class's originals to the eval pool (train:eval = 5:1)
SEED = 18
JPEG_QUALITY = 90
MAX_CROP = 0.06             # of the width or height, per side
IMAGE_SUFFIXES = ('.jpg', '.jpeg', '.png', '.bmp', '.gif')

# When a component "grows" (see the module docstring).
SUPERLINEAR_TIME = 1.15
MIN_SECONDS_TO_FLAG = 2.0   # at the largest size: shorter ones are mostly noise
MEMORY_EXPONENT = 0.3
MEMORY_GROWTH_BYTES = 100 * 2**20

GIB = 2**30
MIB = 2**20


# -- data ----------------------------------------------------------------------

def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class PhotoPools:
    """Per class, a train pool and an eval pool of originals, and photos derived from them.

    Item i of (split, class) is the pool's i-th original, or beyond the pool a photo
    derived from original i mod pool size, with a crop and flip drawn from a seed of
    (split, class, i): the same on every call and machine.
    """

    def __init__(self, source: pathlib.Path, derived_dir: pathlib.Path):
        self.derived_dir = derived_dir
        self.class_names = sorted({p.parent.name for split in ('train', 'validation')
                                   for p in (source / split).glob('*/*')
                                   if p.suffix.lower() in IMAGE_SUFFIXES})
        if len(self.class_names) < 2:
            raise SystemExit(f'error: {source} has no train/<class>/ and validation/<class>/ '
                             'photos of two classes or more')
        self.pools: Dict[tuple, List[pathlib.Path]] = {}
        self.hashes = set()
        for name in self.class_names:
            photos, seen = [], set()
            for path in sorted(source.glob(f'*/{name}/*')):
                if path.suffix.lower() not in IMAGE_SUFFIXES:
                    continue
                digest = _sha256(path.read_bytes())
                if digest not in seen:  # identical photos would land in both splits
                    seen.add(digest)
                    photos.append(path)
            self.hashes |= seen
            random.Random(f'{SEED}:{name}').shuffle(photos)
            n_eval = max(1, round(len(photos) * POOL_EVAL_SHARE))
            if len(photos) - n_eval < 1:
                raise SystemExit(f'error: {source} has too few photos of {name!r}')
            self.pools[('validation', name)] = photos[:n_eval]
            self.pools[('train', name)] = photos[n_eval:]

    def item(self, split: str, name: str, i: int) -> pathlib.Path:
        pool = self.pools[(split, name)]
        if i < len(pool):
            return pool[i]
        original = pool[i % len(pool)]
        path = self.derived_dir / split / name / f'{original.stem}.v{i // len(pool)}.jpg'
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(self._derive(original, f'{SEED}:{split}:{name}:{i}'))
        return path

    def _derive(self, original: pathlib.Path, seed: str) -> bytes:
        from PIL import Image  # pylint: disable=import-outside-toplevel
        with Image.open(original) as image:
            image.load()
            image = image if image.mode in ('RGB', 'L') else image.convert('RGB')
        for attempt in range(100):
            rng = random.Random(f'{seed}:{attempt}')
            w, h = image.size
            dx, dy = max(1, int(w * MAX_CROP)), max(1, int(h * MAX_CROP))
            box = (rng.randint(1, dx), rng.randint(1, dy),
                   w - rng.randint(0, dx), h - rng.randint(0, dy))
            out = image.crop(box)
            if rng.random() < 0.5:
                out = out.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
            buffer = io.BytesIO()
            out.save(buffer, 'JPEG', quality=JPEG_QUALITY)
            data = buffer.getvalue()
            digest = _sha256(data)
            if digest not in self.hashes:
                self.hashes.add(digest)
                return data
        raise RuntimeError(f'no new bytes from {original} after 100 crops')

    def build_root(self, n_train: int, dest: pathlib.Path, layout: str = 'presplit') -> dict:
        """dest/train/<class>/ and dest/validation/<class>/ for n_train training photos;
        layout 'classes': the same photos in dest/<class>/ (the pipeline splits them)."""
        k = len(self.class_names)
        per_class = {'train': n_train // k, 'validation': round(n_train * EVAL_SHARE / k)}
        counts, total_bytes, derived = {}, 0, 0
        for split, n in per_class.items():
            for name in self.class_names:
                for i in range(n):
                    src = self.item(split, name, i)
                    derived += src.is_relative_to(self.derived_dir)
                    total_bytes += src.stat().st_size
                    # The item's index first: names stay unique whatever --source holds.
                    if layout == 'classes':
                        photos.link(src, dest / name / f'{split}-{i:05d}-{src.name}')
                    else:
                        photos.link(src, dest / split / name / f'{i:05d}-{src.name}')
            counts[split] = n * k
        return dict(train=counts['train'], eval=counts['validation'],
                    images=counts['train'] + counts['validation'], derived=derived,
                    data_bytes=total_bytes)


# -- measuring -----------------------------------------------------------------

_STARTED = re.compile(r'^Component (\S+) is running\.$')
_FINISHED = re.compile(r'^Component (\S+) is finished\.$')


class ComponentWindows(logging.Handler):
    """Start and end times of each component, from LocalDagRunner's own log records.

    At each, takes a sample at once, so short components have their ends measured.
    """

    def __init__(self, sampler: tree_sampler.TreeSampler):
        super().__init__(level=logging.INFO)
        self.sampler = sampler
        self.order: List[str] = []
        self.started: Dict[str, float] = {}
        self.finished: Dict[str, float] = {}

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
        except Exception:  # pylint: disable=broad-except
            return
        for pattern, times in ((_STARTED, self.started), (_FINISHED, self.finished)):
            match = pattern.match(message)
            if match:
                node_id = match.group(1)
                if times is self.started:
                    self.order.append(node_id)
                times[node_id] = record.created
                self.sampler.sample()


def measure_one(n_train: int, data_root: str, work_dir: str, epochs: int, interval: float,
                verbose: bool) -> dict:
    """Runs the pipeline once on data_root (in this process); returns the measurements."""
    os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '1')  # as local_runner.main
    from pipeline import console  # pylint: disable=import-outside-toplevel
    result = dict(size=n_train, epochs=epochs, data_root=data_root, work_dir=work_dir)
    with console.Console(os.path.join(work_dir, 'bench.log'), verbose=verbose) as con:
        import local_runner  # pylint: disable=import-outside-toplevel
        from components.image_example_gen import layout  # pylint: disable=import-outside-toplevel
        from pipeline import configs  # pylint: disable=import-outside-toplevel
        from reports import mlmd_runs  # pylint: disable=import-outside-toplevel
        from tfx import v1 as tfx  # pylint: disable=import-outside-toplevel,unused-import
        from pipeline import pipeline as _  # pylint: disable=import-outside-toplevel,unused-import

        root = layout.inspect_data_root(data_root)
        config = configs.local(work_dir, root.root, presplit=root.presplit,
                               class_names=root.class_names, test_folder=root.test_folder,
                               images=root.images,
                               epochs=epochs, accuracy_threshold=0.0, enable_cache=False)
        metadata_path = configs.metadata_path(work_dir)
        sampler = tree_sampler.TreeSampler(interval)
        windows = ComponentWindows(sampler)
        logging.getLogger().addHandler(windows)
        start, baseline, _, _ = sampler.sample()
        sampler.start()
        try:
            local_runner.run(config, metadata_path, con)
        except Exception as e:  # pylint: disable=broad-except
            logging.getLogger(__name__).error('run failed', exc_info=e)
            con.failed(str(e))
            result['error'] = f'{type(e).__name__}: {console.reason_line(str(e))}'
        finally:
            end = time.time()
            sampler.stop()
            logging.getLogger().removeHandler(windows)
        result['log'] = con.log_path
        run = mlmd_runs.latest_run(metadata_path, config.pipeline_name) if os.path.exists(
            metadata_path) else None

    total = sampler.window(start, end)
    result.update(baseline_rss=baseline, total=total, components=[])
    for node_id in windows.order:
        finished = windows.finished.get(node_id, end)
        measured = sampler.window(windows.started[node_id], finished)
        node = run.nodes.get(node_id) if run else None
        measured.update(id=node_id, state=node.state if node else 'UNKNOWN',
                        mlmd_seconds=node.seconds if node else None)
        result['components'].append(measured)
    inside_wall = sum(c['wall'] for c in result['components'])
    inside_cpu = sum(c['cpu'] for c in result['components'])
    result['between'] = dict(wall=total['wall'] - inside_wall, cpu=total['cpu'] - inside_cpu)
    return result


# -- fitting and printing --------------------------------------------------------

def power_fit(n: List[float], y: List[float]) -> Optional[float]:
    """Exponent b of y = a * n^b, least squares on log-log; None with < 2 usable points."""
    points = [(x, v) for x, v in zip(n, y) if x > 0 and v and v > 0]
    if len({x for x, _ in points}) < 2:
        return None
    return float(np.polyfit(np.log([x for x, _ in points]), np.log([v for _, v in points]), 1)[0])


def _fmt(value, spec: str, width: int) -> str:
    return f'{value:{width}{spec}}' if value is not None else f'{"-":>{width}s}'


def print_tables(results: List[dict], source: str, epochs: int,
                 layout: str = 'presplit') -> None:
    ok = sorted((r for r in results if 'components' in r), key=lambda r: r['size'])
    if not ok:
        print('no size was measured')
        return
    order: List[str] = []
    for r in ok:
        order += [c['id'] for c in r['components'] if c['id'] not in order]
    by_id = [{c['id']: c for c in r['components']} for r in ok]
    name_width = max(len(x) for x in order + ['between components'])
    col = 26

    print(f'\nscale: the whole pipeline per size, epochs {epochs}; sizes are training photos, '
          f'eval = {EVAL_SHARE:.0%} more ({"pre-split root" if layout == "presplit" else "class folders only, split by the pipeline,"} from {source})')
    print(' ' * name_width + ''.join(f'{"n=" + str(r["size"]):>{col}s}' for r in ok))
    print(f'{"images (train+eval)":{name_width}s}' + ''.join(
        f'{r["images"]:>{col}d}' for r in ok))
    print(f'{"  of them derived":{name_width}s}' + ''.join(f'{r["derived"]:>{col}d}' for r in ok))
    print(f'{"data MB":{name_width}s}' + ''.join(
        f'{r["data_bytes"] / 1e6:>{col}.1f}' for r in ok))
    print(f'{"baseline RSS GiB":{name_width}s}' + ''.join(
        f'{r["baseline_rss"] / GIB:>{col}.2f}' for r in ok))
    print(f'{"":{name_width}s}' + f'{"wall s":>{col - 18}s}{"CPU s":>8s}{"peak GiB":>10s}'
          * len(ok))

    def row(name, cells):
        text = f'{name:{name_width}s}'
        for c in cells:
            if c is None:
                text += f'{"-":>{col}s}'
            else:
                peak = _fmt(c['peak'] / GIB if c.get('peak') else None, '.2f', 10)
                text += f'{c["wall"]:>{col - 18}.1f}{c["cpu"]:8.1f}{peak}'
        print(text)

    for node_id in order:
        row(node_id, [m.get(node_id) for m in by_id])
    row('between components', [r['between'] for r in ok])
    row('whole run', [r['total'] for r in ok])
    states = {(c['id'], c['state']) for r in ok for c in r['components']
              if c['state'] != 'COMPLETE'}
    if states:
        print('not COMPLETE: ' + ', '.join(f'{i} {s}' for i, s in sorted(states)))

    n = [r['images'] for r in ok]
    largest = ok[-1]
    if len(ok) < 2:
        print(f'\nwhole run at n={largest["images"]}: {largest["total"]["wall"]:.0f} s wall, '
              f'{largest["total"]["cpu"]:.0f} s CPU, peak {largest["total"]["peak"] / GIB:.2f} '
              'GiB; no fit and no "grows:" with one size')
        return
    print(f'\nfit over {len(ok)} sizes (n = images, train + eval; y = a * n^b, least squares '
          'on log-log); own memory = peak minus the RSS at the start of the component')
    print(f'{"":{name_width}s} {"s/1k img":>9s} {"marg s/1k":>9s} {"time b":>7s} {"CPU b":>6s} '
          f'{"peak +MB":>9s} {"own +MB":>8s} {"own b":>6s} {"own MB/1k":>9s}')
    grows = []
    for name, cells in [(i, [m.get(i) for m in by_id]) for i in order] + [
            ('whole run', [r['total'] for r in ok])]:
        if any(c is None for c in cells):
            print(f'{name:{name_width}s} (not measured at every size)')
            continue
        wall = [c['wall'] for c in cells]
        cpu = [c['cpu'] for c in cells]
        peak = [c['peak'] for c in cells]
        own = [c['peak'] - c['start_rss'] for c in cells]
        b_wall, b_cpu = power_fit(n, wall), power_fit(n, cpu)
        b_own = power_fit(n, [max(o, MIB) for o in own])
        per_1k = wall[-1] / n[-1] * 1000
        marginal = ((wall[-1] - wall[-2]) / (n[-1] - n[-2]) * 1000) if len(n) > 1 else None
        growth = own[-1] - own[0]
        own_per_1k = growth / MIB / (n[-1] - n[0]) * 1000 if len(n) > 1 else None
        print(f'{name:{name_width}s} {per_1k:9.2f} {_fmt(marginal, ".2f", 9)} '
              f'{_fmt(b_wall, ".2f", 7)} {_fmt(b_cpu, ".2f", 6)} '
              f'{(peak[-1] - peak[0]) / MIB:+9.0f} {growth / MIB:+8.0f} '
              f'{_fmt(b_own, ".2f", 6)} {_fmt(own_per_1k, ".0f", 9)}')
        if name == 'whole run':
            continue
        why = []
        if b_wall is not None and b_wall > SUPERLINEAR_TIME and wall[-1] >= MIN_SECONDS_TO_FLAG:
            why.append(f'time exponent {b_wall:.2f}: {wall[0]:.1f} s at {n[0]} images -> '
                       f'{wall[-1]:.1f} s at {n[-1]}; CPU exponent {_fmt(b_cpu, ".2f", 0)}'
                       + ('' if b_cpu is not None and b_cpu > SUPERLINEAR_TIME else
                          ' (not superlinear: the wall time may be the machine\'s load)'))
        rises = len(own) > 2 and all(b > a for a, b in zip(own, own[1:]))
        if growth > MEMORY_GROWTH_BYTES and (
                (b_own is not None and b_own > MEMORY_EXPONENT) or rises):
            why.append(f'own memory {own[0] / MIB:.0f} -> {own[-1] / MIB:.0f} MB '
                       f'(+{growth / MIB:.0f} MB, {own_per_1k:.0f} MB per 1k images, exponent '
                       f'{_fmt(b_own, ".2f", 0)}' + (', rising at every size' if rises else '')
                       + f'); peak {peak[0] / GIB:.2f} -> {peak[-1] / GIB:.2f} GiB, of it this '
                         f'process {cells[0]["peak_main"] / GIB:.2f} -> '
                         f'{cells[-1]["peak_main"] / GIB:.2f} GiB')
        if why:
            grows.append(f'  {name}: ' + '; '.join(why))
    print(f'\nwhole run at n={largest["images"]}: {largest["total"]["wall"]:.0f} s wall, '
          f'{largest["total"]["cpu"]:.0f} s CPU, peak {largest["total"]["peak"] / GIB:.2f} GiB')
    print('grows:' + ('' if grows else
                      f' nothing (no time exponent above {SUPERLINEAR_TIME}, no own memory '
                      f'growing by over {MEMORY_GROWTH_BYTES // MIB} MB with an exponent '
                      f'above {MEMORY_EXPONENT} or at every size)'))
    for line in grows:
        print(line)


# -- main ----------------------------------------------------------------------

def _sizes(text: str) -> List[int]:
    sizes = sorted({int(s) for s in text.replace(' ', '').split(',') if s})
    if not sizes or min(sizes) < 10:
        raise argparse.ArgumentTypeError(f'sizes must be integers >= 10, got {text!r}')
    return sizes


def run_child(args, n_train: int, data_root: pathlib.Path, work_dir: pathlib.Path,
              json_path: pathlib.Path) -> dict:
    """This script with --one-size in a fresh process; its console lines pass through."""
    cmd = [sys.executable, os.path.abspath(__file__), '--one-size', str(n_train),
           '--data-root', str(data_root), '--work-dir', str(work_dir), '--json', str(json_path),
           '--epochs', str(args.epochs), '--interval', str(args.interval)]
    if args.verbose:
        cmd.append('--verbose')
    code = subprocess.call(cmd, cwd=PROJECT)
    try:
        with open(json_path, encoding='utf-8') as f:
            result = json.load(f)
    except (OSError, ValueError):
        result = dict(size=n_train, error=f'exit status {code}, no result')
    if code and 'error' not in result:
        result['error'] = f'exit status {code}'
    return result


def main() -> int:
    from pipeline import configs  # pylint: disable=import-outside-toplevel
    parser = argparse.ArgumentParser(description=__doc__.split('\n', maxsplit=1)[0])
    parser.add_argument('--sizes', type=_sizes, default=list(DEFAULT_SIZES),
                        help='training photos per run, comma-separated (eval: 20%% more)')
    parser.add_argument('--quick', action='store_true',
                        help=f'sizes {",".join(map(str, QUICK_SIZES))}: checks the script works')
    parser.add_argument('--epochs', type=int, default=1)
    parser.add_argument('--source', default=str(configs.SHARED / 'datasets' /
                                                'cats_and_dogs_filtered'),
                        help='train/<class>/ and validation/<class>/ photos, pooled')
    parser.add_argument('--layout', choices=('presplit', 'classes'), default='presplit',
                        help='presplit: train/<class>/ and validation/<class>/; classes: '
                             '<class>/ only, the same photos, split per class by content hash')
    parser.add_argument('--interval', type=float, default=0.2, help='sampling period, s')
    parser.add_argument('--keep', action='store_true', help='keep the temporary folder')
    parser.add_argument('--verbose', action='store_true', help='TF, Beam and TFX logs too')
    parser.add_argument('--one-size', type=int, metavar='N',
                        help='measure one size in this process (what each size runs)')
    parser.add_argument('--data-root', help='with --one-size: the root to use (default: '
                                            'built from --source)')
    parser.add_argument('--work-dir', help='with --one-size: the pipeline\'s work dir')
    parser.add_argument('--json', help='with --one-size: write the measurements here')
    args = parser.parse_args()
    sizes = list(QUICK_SIZES) if args.quick else args.sizes

    tmp = pathlib.Path(tempfile.mkdtemp(prefix='bench_scale_'))
    keep = args.keep
    try:
        if args.one_size:
            code = _one_size(args, tmp)
            if (keep or code) and not (args.data_root and args.work_dir):
                keep = True  # this size's own data, outputs and log
                print(f'kept: {tmp}')
            return code
        pools = PhotoPools(pathlib.Path(args.source), tmp / 'derived')
        print(f'bench/scale.py: sizes {", ".join(map(str, sizes))} training photos (+20% eval), '
              f'layout {args.layout}, epochs {args.epochs}; temporary folder {tmp}', flush=True)
        results = []
        for n_train in sizes:
            data = pools.build_root(n_train, tmp / f'data_{n_train}', args.layout)
            print(f'--- n={n_train}: {data["train"]} train + {data["eval"]} eval photos '
                  f'({data["derived"]} derived), {data["data_bytes"] / 1e6:.1f} MB', flush=True)
            work_dir = tmp / f'work_{n_train}'
            result = run_child(args, n_train, tmp / f'data_{n_train}', work_dir,
                               tmp / f'result_{n_train}.json')
            result.update(data)
            results.append(result)
            if 'error' in result:
                keep = True
                print(f'n={n_train} FAILED: {result["error"]}; log {result.get("log")}')
            elif not args.keep:  # the pipeline's outputs: up to GBs per size
                shutil.rmtree(work_dir, ignore_errors=True)
                shutil.rmtree(tmp / f'data_{n_train}', ignore_errors=True)
        print_tables(results, args.source, args.epochs, args.layout)
        if keep:
            print(f'kept: {tmp}')
        return 0 if all('error' not in r for r in results) else 1
    finally:
        if not keep:
            shutil.rmtree(tmp, ignore_errors=True)


def _one_size(args, tmp: pathlib.Path) -> int:
    """--one-size: one measured run; JSON to --json, or the table when run by hand."""
    data = {}
    data_root = args.data_root
    if not data_root:
        pools = PhotoPools(pathlib.Path(args.source), tmp / 'derived')
        data_root = str(tmp / 'data')
        data = pools.build_root(args.one_size, pathlib.Path(data_root), args.layout)
    work_dir = args.work_dir or str(tmp / 'work')
    result = measure_one(args.one_size, os.path.abspath(data_root), os.path.abspath(work_dir),
                         args.epochs, args.interval, args.verbose)
    if args.json:
        with open(args.json, 'w', encoding='utf-8') as f:
            json.dump(result, f, indent=1)
    else:
        if not data:
            files = [p for p in pathlib.Path(data_root).rglob('*') if p.is_file()]
            eval_files = [p for p in files if 'validation' in p.relative_to(data_root).parts[:1]]
            data = dict(train=len(files) - len(eval_files), eval=len(eval_files),
                        images=len(files),
                        derived=sum(bool(re.search(r'\.v\d+$', p.stem)) for p in files),
                        data_bytes=sum(p.stat().st_size for p in files))
        result.update(data)
        print_tables([result], args.data_root or args.source, args.epochs, args.layout)
    if 'error' in result:
        print(f'error: {result["error"]}; log {result.get("log")}', file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
