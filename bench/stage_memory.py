"""The memory of each process of a pipeline run, per component.

    python bench/stage_memory.py [--interval 0.2] [--json PATH] [--project DIR] [--pss]
                                 -- <local_runner.py flags>

Runs `local_runner.py` with the given flags in a child process and samples, every
--interval s, the RSS of that process (the pipeline's main process) and of every
process under it (Beam's workers, the InfraValidator's server, TFLite conversions in
a child). The console's component lines (`[3/19] Trainer ...` and its ` done 35.2 s`)
are time-stamped as they arrive and cut the run into windows: per component, its
console seconds, the CPU seconds of all the processes inside its window and the cores
they kept busy on average (CPU / the window's wall seconds: below the machine's cores,
some sat idle), the main process's RSS at its end and its peak inside it, and the
largest other process inside it (its command), and the sum of all processes' RSS (pages
shared between processes, e.g. TensorFlow's libraries, count once per process) and, with
--pss, of their PSS (shared pages divided among their processes: what they take
together). A window shorter than a sample reads the samples on either side of it. Last:
the whole run's wall, CPU and busy cores (and what of them fell outside the components),
and its largest process (what bench/pipeline_vs_notebook.py's "largest process" is). One
sampler, bench/tree_sampler.py's TreeSampler, takes all of it. Prints numbers; asserts
nothing.
"""

import argparse
import json
import os
import re
import subprocess
import sys
import threading
import time
from typing import List, Optional, Tuple

import psutil

PROJECT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, PROJECT)

from bench import tree_sampler  # pylint: disable=wrong-import-position

_START = re.compile(rb'\[\d+/\d+\] (\S+) \.\.\.')
_DONE = re.compile(rb'(?:\[\d+/\d+\] (\S+) )?(done|cached|FAILED after) ([0-9.]+)?')


def read_console(pipe, events: List[Tuple[float, str, str, Optional[float]]],
                 echo: bool) -> None:
    """Time-stamps the console's component starts and ends as their bytes arrive."""
    current = None
    buffer = b''
    while True:
        chunk = os.read(pipe.fileno(), 65536)
        if not chunk:
            return
        now = time.time()
        if echo:
            sys.stdout.buffer.write(chunk)
            sys.stdout.flush()
        buffer += chunk
        while True:
            start, done = _START.search(buffer), _DONE.search(buffer)
            first = min((m for m in (start, done) if m), key=lambda m: m.start(), default=None)
            if first is None:
                buffer = buffer[-200:]
                break
            if first is start:
                current = start.group(1).decode()
                events.append((now, 'start', current, None))
            elif current is not None or done.group(1):
                node = done.group(1).decode() if done.group(1) else current
                seconds = float(done.group(3)) if done.group(3) else None
                events.append((now, 'end', node, seconds))
                current = None
            buffer = buffer[first.end():]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--interval', type=float, default=0.2)
    parser.add_argument('--json', help='also write the figures here')
    parser.add_argument('--quiet', action='store_true', help="don't echo the console")
    parser.add_argument('--pss', action='store_true',
                        help="also the sum of the processes' PSS (shared pages divided "
                             'among the processes that map them)')
    parser.add_argument('--project', default=PROJECT,
                        help='the checkout whose local_runner.py runs (default: this one)')
    parser.add_argument('runner_args', nargs=argparse.REMAINDER)
    args = parser.parse_args()
    runner_args = [a for a in args.runner_args if a != '--']
    env = dict(os.environ, PYTHONUNBUFFERED='1', PYTHONPATH=args.project)
    started = time.time()
    proc = subprocess.Popen([sys.executable, 'local_runner.py', *runner_args], cwd=args.project,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    sampler = tree_sampler.TreeSampler(args.interval, psutil.Process(proc.pid), details=True,
                                       pss=args.pss)
    sampler.start()
    events: List[Tuple[float, str, str, Optional[float]]] = []
    reader = threading.Thread(target=read_console, args=(proc.stdout, events, not args.quiet),
                              daemon=True)
    reader.start()
    proc.wait()
    reader.join()
    sampler.stop()
    wall = time.time() - started

    def command(pid: int) -> str:
        if pid == proc.pid:
            return 'local_runner.py (main)'
        return next((' '.join(each[pid][1][1:4]) for _, each, _ in reversed(sampler.details)
                     if pid in each), '')

    starts = {node: t for t, kind, node, _ in events if kind == 'start'}
    rows = []
    print(f'\n{"component":<22} {"s":>6} {"CPU s":>6} {"cores":>5} {"main end":>9} '
          f'{"main peak":>10} {"other peak":>11} {"tree peak":>10} {"PSS peak":>9}  other process')
    previous_end = started
    for t, kind, node, seconds in events:
        if kind != 'end':
            continue
        t0 = starts.get(node, previous_end)
        measured = sampler.window(t0, t)  # the tree's CPU, its RSS and the main process's
        records = sampler.details_inside(t0, t)
        end_rss = ([rss for when, _, _, rss in sampler.samples if when <= t][-1:] or [0])[0]
        other, cmd = max(((rss, ' '.join(line[1:4])) for _, each, _ in records
                          for pid, (rss, line) in each.items() if pid != proc.pid),
                         default=(0, ''))
        pss_peak = max((pss for _, _, pss in records), default=0)
        cores = measured['cpu'] / measured['wall'] if measured['wall'] > 0 else 0.0
        rows.append(dict(component=node, seconds=seconds, wall=measured['wall'],
                         cpu=measured['cpu'], cores=cores,
                         main_end=end_rss, main_peak=measured['peak_main'], other_peak=other,
                         other=cmd, tree_peak=measured['peak'], pss_peak=pss_peak))
        print(f'{node:<22} {seconds or 0:6.1f} {measured["cpu"]:6.1f} {cores:5.2f} '
              f'{end_rss / 2**30:9.2f} {measured["peak_main"] / 2**30:10.2f} '
              f'{other / 2**30:11.2f} {measured["peak"] / 2**30:10.2f} {pss_peak / 2**30:9.2f}  '
              f'{cmd if other else ""}')
        previous_end = t
    peaks = sampler.process_peaks
    largest_pid = max(peaks, key=lambda pid: peaks[pid][0])
    main_peak = peaks.get(proc.pid, (0, ''))[0]
    tree_peak = sampler.peak_rss()
    pss_peak = max((pss for _, _, pss in sampler.details), default=0)
    cpu = sampler.cpu_seconds()
    outside_cpu = cpu - sum(row['cpu'] for row in rows)
    outside_wall = wall - sum(row['wall'] for row in rows)
    if args.pss:
        print(f'all processes (sum of PSS): peak {pss_peak / 2**30:.2f} GiB')
    print(f'\nwall {wall:.1f} s; CPU {cpu:.1f} s = {cpu / wall:.2f} cores busy on average '
          f'(outside the components: {outside_cpu:.1f} s over {outside_wall:.1f} s); main '
          f'process peak {main_peak / 2**30:.2f} GiB; largest process '
          f'{peaks[largest_pid][0] / 2**30:.2f} GiB ({command(largest_pid)}); all processes '
          f'(sum of RSS) {tree_peak / 2**30:.2f} GiB; exit {proc.returncode}; '
          f'{len(sampler.samples)} samples; load {os.getloadavg()}')
    if args.json:
        with open(args.json, 'w', encoding='utf-8') as f:
            json.dump(dict(wall=wall, cpu=cpu, cores=cpu / wall, main_peak=main_peak,
                           largest=peaks[largest_pid][0], tree_peak=tree_peak,
                           pss_peak=pss_peak, largest_command=command(largest_pid),
                           components=rows, returncode=proc.returncode), f, indent=1)
    return proc.returncode


if __name__ == '__main__':
    sys.exit(main())
