"""Memory and CPU of a process tree, sampled in a background thread (bench/ only)."""

import subprocess
import threading
import time
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

import psutil


class TreeSampler:
    """Samples RSS and cumulative CPU time of a process (this one unless told) and all its
    descendants.

    CPU: each live process's user + system time plus that of the children it has
    reaped (children_user/system), summed; a child that exits and is reaped moves its
    time into its parent's count, so the sum keeps it. Lost only: processes reparented
    away from the tree (orphans) and what a process used between the last sample and
    exiting unreaped.

    With details=True, each sample also keeps every process's RSS with its command line
    (in `details`, beside `samples`); with pss=True (implies details) the sum of the tree's
    PSS too: shared pages divided among the processes that map them, what they take
    together (reading it costs a pass over each process's smaps).
    """

    def __init__(self, interval: float, root: Optional[psutil.Process] = None,
                 details: bool = False, pss: bool = False):
        self.interval = interval
        self.root = root or psutil.Process()
        self.pss = pss
        self.keep_details = details or pss
        # (time.time(), tree RSS bytes, tree CPU seconds, the root process's RSS bytes)
        self.samples: List[tuple] = []
        # With details: (the sample's time, {pid: (RSS bytes, command line tuple)}, the tree's
        # PSS bytes (0 without pss)), one a sample.
        self.details: List[Tuple[float, Dict[int, Tuple[int, Tuple[str, ...]]], int]] = []
        # The largest RSS each process of the tree was sampled at, by pid (with its name).
        self.process_peaks: Dict[int, tuple] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    def sample(self) -> tuple:
        rss, cpu, own_rss, pss, read = 0, 0.0, 0, 0, 0
        each: Dict[int, Tuple[int, Tuple[str, ...]]] = {}
        try:
            procs = [self.root] + self.root.children(recursive=True)
        except psutil.Error:
            procs = [self.root]
        for proc in procs:
            try:
                memory = proc.memory_info().rss
                rss += memory
                own_rss = memory if proc is self.root else own_rss
                peak = memory > self.process_peaks.get(proc.pid, (0,))[0]
                line = tuple(proc.cmdline()) if peak or self.keep_details else ()
                if peak:
                    self.process_peaks[proc.pid] = (memory, ' '.join(line[:2]))
                if self.keep_details:
                    each[proc.pid] = (memory, line)
            except psutil.Error:
                pass
            try:
                t = proc.cpu_times()
                cpu += t.user + t.system + t.children_user + t.children_system
                read += 1
            except psutil.Error:
                pass
        if self.pss:  # after the RSS and CPU, which stay read close together
            for proc in procs:
                try:
                    pss += proc.memory_full_info().pss
                except psutil.Error:
                    pass
        point = (time.time(), rss, cpu, own_rss)
        if not read:
            # The tree has gone (e.g. stop()'s last sample after the command exited): a
            # sample of zeros would read as its CPU and memory falling to nothing.
            return point
        with self._lock:
            self.samples.append(point)
            if self.keep_details:
                self.details.append((point[0], each, pss))
        return point

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name='tree-sampler', daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.sample()

    def window(self, start: float, end: float) -> dict:
        """Wall, CPU, peak RSS (tree, this process) and the RSS at the start of a window."""
        with self._lock:
            points = sorted(self.samples)
        inside = self._inside(points, start, end)
        at_start = ([p for p in points if p[0] <= start][-1:] or inside[:1] or [(0,) * 4])[0]
        return dict(wall=end - start, cpu=self._cpu_at(points, end) - self._cpu_at(points, start),
                    peak=max((p[1] for p in inside), default=0),
                    peak_main=max((p[3] for p in inside), default=0),
                    start_rss=at_start[1], samples=len(inside))

    def details_inside(self, start: float, end: float) -> List[tuple]:
        """The details records of the samples window(start, end) reads (details=True)."""
        with self._lock:
            records = sorted(self.details, key=lambda record: record[0])
        return self._inside(records, start, end)

    @staticmethod
    def _inside(points: List[tuple], start: float, end: float) -> List[tuple]:
        """The points (time first) from start to end; for a window shorter than a sample, the
        nearest ones around it."""
        inside = [p for p in points if start <= p[0] <= end]
        if not inside:
            inside = [p for p in points if p[0] <= start][-1:] + [
                p for p in points if p[0] >= end][:1]
        return inside

    @staticmethod
    def _cpu_at(points: List[tuple], when: float) -> float:
        before = [p for p in points if p[0] <= when]
        after = [p for p in points if p[0] >= when]
        if not before:
            return after[0][2] if after else 0.0
        if not after or after[0][0] == before[-1][0]:
            return before[-1][2]
        (t0, _, c0, _), (t1, _, c1, _) = before[-1], after[0]
        return c0 + (c1 - c0) * (when - t0) / (t1 - t0)

    def cpu_seconds(self) -> float:
        """The tree's CPU seconds so far (the cumulative count's largest sample)."""
        with self._lock:
            return max((p[2] for p in self.samples), default=0.0)

    def peak_rss(self) -> int:
        """The largest RSS of the whole tree sampled so far, in bytes."""
        with self._lock:
            return max((p[1] for p in self.samples), default=0)

    def largest_process(self) -> int:
        """The largest RSS one process of the tree was sampled at, in bytes."""
        return max((peak for peak, _ in self.process_peaks.values()), default=0)


class Measured(NamedTuple):
    """What run_measured saw: wall seconds, peak RSS of the whole tree (bytes), CPU seconds
    of the tree, and the peak RSS of its largest single process (bytes)."""
    wall: float
    peak: int
    cpu: float
    largest: int


def run_measured(cmd: Sequence[str], log_path: str, cwd: str) -> Measured:
    """Runs cmd in cwd, its output to log_path, sampling its process tree every 0.25 s.

    Returns:
      Measured; CPU time moves less than wall time when other processes share the cores.

    Raises:
      RuntimeError: cmd failed (naming the log).
    """
    start = time.perf_counter()
    with open(log_path, 'w', encoding='utf-8') as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=cwd)
        sampler = TreeSampler(0.25, psutil.Process(proc.pid))
        sampler.start()
        proc.wait()
        sampler.stop()
    wall = time.perf_counter() - start
    if proc.returncode:
        raise RuntimeError(f'{" ".join(cmd[:3])} failed ({proc.returncode}); see {log_path}')
    return Measured(wall, sampler.peak_rss(), sampler.cpu_seconds(), sampler.largest_process())
