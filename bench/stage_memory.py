"""The memory of each process of a pipeline run, per component.

    python bench/stage_memory.py [--interval 0.2] [--json PATH] [--project DIR] [--pss]
                                 -- <local_runner.py flags>

Runs `local_runner.py` with the given flags in a child process and samples, every
--interval s, the RSS of that process (the pipeline's main process) and of every
process under it (Beam's workers, the InfraValidator's server, TFLite conversions in
a child). The console's component lines (`[3/19] Trainer ...` and its ` done 35.2 s`)
are time-stamped as they arrive and cut the run into windows: per component, its
console seconds, the main process's RSS at its end and its peak inside it, and the
largest other process inside it (its command), and the sum of all processes' RSS (pages
shared between processes, e.g. TensorFlow's libraries, count once per process, as in
tree_sampler) and, with --pss, of their PSS (shared pages divided among their processes:
what they take together). Last: the largest process of the run
(what bench/pipeline_vs_notebook.py's "largest process" is: tree_sampler's per-process
peak). Prints numbers; asserts nothing.
"""

import argparse
import json
import os
import re
import subprocess
import sys
import threading
import time
from typing import Dict, List, Optional, Tuple

import psutil

PROJECT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_START = re.compile(rb'\[\d+/\d+\] (\S+) \.\.\.')
_DONE = re.compile(rb'(?:\[\d+/\d+\] (\S+) )?(done|cached|FAILED after) ([0-9.]+)?')


class Sampler(threading.Thread):
    """(time, main RSS, {pid: (RSS, command)} of the others, PSS of all) every `interval` s
    (PSS: with pss=True, else 0)."""

    def __init__(self, root: psutil.Process, interval: float, pss: bool = False):
        super().__init__(daemon=True)
        self.root, self.interval, self.pss = root, interval, pss
        self.samples: List[Tuple[float, int, Dict[int, Tuple[int, str]], int]] = []
        self.stop = threading.Event()

    def sample(self) -> None:
        try:
            main = self.root.memory_info().rss
            children = self.root.children(recursive=True)
        except psutil.Error:
            return
        others, pss = {}, 0
        for child in children:
            try:
                others[child.pid] = (child.memory_info().rss, ' '.join(child.cmdline()[1:4]))
            except psutil.Error:
                pass
        if self.pss:
            for process in [self.root, *children]:
                try:
                    pss += process.memory_full_info().pss
                except psutil.Error:
                    pass
        self.samples.append((time.time(), main, others, pss))

    def run(self) -> None:
        while not self.stop.wait(self.interval):
            self.sample()


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
    sampler = Sampler(psutil.Process(proc.pid), args.interval, args.pss)
    sampler.start()
    events: List[Tuple[float, str, str, Optional[float]]] = []
    reader = threading.Thread(target=read_console, args=(proc.stdout, events, not args.quiet),
                              daemon=True)
    reader.start()
    proc.wait()
    reader.join()
    sampler.stop.set()
    sampler.join()
    wall = time.time() - started
    samples = sampler.samples

    def tree(sample) -> int:
        return sample[1] + sum(rss for rss, _ in sample[2].values())

    def window(t0: float, t1: float):
        inside = [s for s in samples if t0 <= s[0] <= t1]
        before = [s for s in samples if s[0] <= t1]
        main_peak = max((s[1] for s in inside), default=0)
        end_rss = before[-1][1] if before else 0
        other = max(((rss, cmd) for s in inside for rss, cmd in s[2].values()), default=(0, ''))
        return (main_peak, end_rss, other, max((tree(s) for s in inside), default=0),
                max((s[3] for s in inside), default=0))

    starts = {node: t for t, kind, node, _ in events if kind == 'start'}
    rows = []
    print(f'\n{"component":<22} {"s":>6} {"main end":>9} {"main peak":>10} {"other peak":>11} '
          f'{"tree peak":>10} {"PSS peak":>9}  other process')
    previous_end = started
    for t, kind, node, seconds in events:
        if kind != 'end':
            continue
        t0 = starts.get(node, previous_end)
        main_peak, end_rss, (other, cmd), tree_peak, pss_peak = window(t0, t)
        rows.append(dict(component=node, seconds=seconds, main_end=end_rss,
                         main_peak=main_peak, other_peak=other, other=cmd, tree_peak=tree_peak,
                         pss_peak=pss_peak))
        print(f'{node:<22} {seconds or 0:6.1f} {end_rss / 2**30:9.2f} {main_peak / 2**30:10.2f} '
              f'{other / 2**30:11.2f} {tree_peak / 2**30:10.2f} {pss_peak / 2**30:9.2f}  '
              f'{cmd if other else ""}')
        previous_end = t
    peaks: Dict[int, Tuple[int, str]] = {}
    for _, main, others, _ in samples:
        if main > peaks.get(proc.pid, (0, ''))[0]:
            peaks[proc.pid] = (main, 'local_runner.py (main)')
        for pid, (rss, cmd) in others.items():
            if rss > peaks.get(pid, (0, ''))[0]:
                peaks[pid] = (rss, cmd)
    largest_pid = max(peaks, key=lambda pid: peaks[pid][0])
    main_peak = peaks.get(proc.pid, (0, ''))[0]
    tree_peak = max((tree(s) for s in samples), default=0)
    pss_peak = max((s[3] for s in samples), default=0)
    if args.pss:
        print(f'all processes (sum of PSS): peak {pss_peak / 2**30:.2f} GiB')
    print(f'\nwall {wall:.1f} s; main process peak {main_peak / 2**30:.2f} GiB; largest process '
          f'{peaks[largest_pid][0] / 2**30:.2f} GiB ({peaks[largest_pid][1]}); all processes '
          f'(sum of RSS) {tree_peak / 2**30:.2f} GiB; exit {proc.returncode}; {len(samples)} '
          f'samples; load {os.getloadavg()}')
    if args.json:
        with open(args.json, 'w', encoding='utf-8') as f:
            json.dump(dict(wall=wall, main_peak=main_peak, largest=peaks[largest_pid][0],
                           tree_peak=tree_peak, pss_peak=pss_peak,
                           largest_command=peaks[largest_pid][1], components=rows,
                           returncode=proc.returncode), f, indent=1)
    return proc.returncode


if __name__ == '__main__':
    sys.exit(main())
