"""What ReferenceProfile costs with and without a model pass, on a real run's artifacts.

    python bench/reference_profile.py [--data-root DIR] [--work-dir DIR] [--rounds 3]

Runs the pipeline once as `make run` runs it (local_runner.py, default settings, no
report) on --data-root (default: the tutorial's own set) unless --work-dir already holds
a run, then, on that run's artifacts, ReferenceProfile's two ways side by side, each in a
fresh process, alternately, --rounds times each: `model` (the exported model's embedding
signature over the sample, as before, what a run without DataQuality or with a fine-tuned
base does) and `reused` (DataQuality's frozen features and the Trainer's eval answers:
components/reference_profile/reuse.py). Each child times the component's work: the
sample (the same either way) and build_profile (image statistics, then the model or the
reuse). Prints every measurement, the medians, the run's own ReferenceProfile seconds (from
MLMD) and how far apart the two profiles' numbers are. Asserts nothing.
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

PROJECT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, PROJECT)

DEFAULT_DATA = os.path.join(os.path.dirname(PROJECT), 'shared', 'datasets',
                            'cats_and_dogs_filtered')
MODES = ('model', 'reused')


def latest_run(work: str):
    from pipeline import configs  # pylint: disable=import-outside-toplevel
    from reports import mlmd_runs  # pylint: disable=import-outside-toplevel
    path = configs.metadata_path(work)
    return mlmd_runs.latest_run(path, configs.PIPELINE_NAME) if os.path.exists(path) else None


def one(work: str, mode: str, out: str) -> None:
    """The child: ReferenceProfile's work in one mode on the run's artifacts; writes the
    profile to out and prints `TIMES <sample s> <build_profile s>`."""
    from tfx.utils import path_utils  # pylint: disable=import-outside-toplevel
    from components import examples_io  # pylint: disable=import-outside-toplevel
    from components.reference_profile import component  # pylint: disable=import-outside-toplevel
    from models import profile  # pylint: disable=import-outside-toplevel
    from pipeline import nodes  # pylint: disable=import-outside-toplevel
    run = latest_run(work)
    examples = run.output(nodes.EXAMPLE_GEN, 'examples').uri
    sample = tempfile.mkdtemp(prefix='profile-sample-')
    start = time.perf_counter()
    component.write_sample(examples, sample, profile.REFERENCE_IMAGES)
    sampled = time.perf_counter()
    result = component.build_profile(
        sample, path_utils.serving_model_path(run.output(nodes.TRAINER, 'model').uri),
        examples_io.read_class_names(examples), embed_train_images=True,
        frozen_features_uri=(run.output(nodes.DATA_QUALITY, 'features').uri
                             if mode == 'reused' else None),
        model_run_uri=run.output(nodes.TRAINER, 'model_run').uri)
    built = time.perf_counter()
    profile.save(result, out)
    print(f'TIMES {sampled - start} {built - sampled}', flush=True)


def difference(model, reused) -> str:
    """How far the reused profile's answers and embeddings are from the model's."""
    import numpy as np  # pylint: disable=import-outside-toplevel
    confidence, embedding = [], []
    for a, b in zip(model['rows'], reused['rows']):
        if 'confidence' in a:
            confidence.append(abs(a['confidence'] - b['confidence']))
        x, y = np.asarray(a['embedding']), np.asarray(b['embedding'])
        embedding.append(np.linalg.norm(x - y) / np.linalg.norm(x))
    return (f"{len(model['rows'])} rows, sources {model['embeddings_from']} / "
            f"{reused['embeddings_from']}: confidence differs by at most {max(confidence):.1e}, "
            f"projected embeddings by at most {max(embedding):.1e} of their norm")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--data-root', default=DEFAULT_DATA)
    parser.add_argument('--work-dir', default=None)
    parser.add_argument('--rounds', type=int, default=3)
    parser.add_argument('--one', choices=MODES, help=argparse.SUPPRESS)
    parser.add_argument('--out', help=argparse.SUPPRESS)
    args = parser.parse_args()
    work = args.work_dir or tempfile.mkdtemp(prefix='bench-profile-')
    if args.one:
        one(work, args.one, args.out)
        return
    from models import profile  # pylint: disable=import-outside-toplevel
    from pipeline import nodes  # pylint: disable=import-outside-toplevel
    if latest_run(work) is None:
        start = time.perf_counter()
        os.makedirs(work, exist_ok=True)
        log = os.path.join(work, 'pipeline.log')
        with open(log, 'w', encoding='utf-8') as out:
            done = subprocess.run([sys.executable, 'local_runner.py', '--data-root',
                                   args.data_root, '--work-dir', work, '--no-report'],
                                  cwd=PROJECT, stdout=out, stderr=subprocess.STDOUT, check=False)
        if done.returncode:
            sys.exit(f'the pipeline failed (exit {done.returncode}): {log}')
        print(f'pipeline: {time.perf_counter() - start:.1f} s ({work})', flush=True)
    run = latest_run(work)
    print(f"the run's ReferenceProfile: {run.nodes[nodes.REFERENCE_PROFILE].seconds:.1f} s",
          flush=True)
    times = {mode: [] for mode in MODES}
    profiles = {}
    for i in range(args.rounds):
        for mode in MODES:
            out = os.path.join(work, f'profile-{mode}-{i}.json')
            child = subprocess.run([sys.executable, os.path.abspath(__file__), '--work-dir',
                                    work, '--one', mode, '--out', out], cwd=PROJECT, check=True,
                                   stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
            [line] = [l for l in child.stdout.splitlines() if l.startswith('TIMES ')]
            sample, build = (float(v) for v in line.split()[1:])
            times[mode].append((sample, build))
            profiles[mode] = profile.load(out)
            print(f'{mode} {i}: sample {sample:.1f} s, build_profile {build:.1f} s', flush=True)
    medians = {mode: (statistics.median(s for s, _ in t), statistics.median(b for _, b in t))
               for mode, t in times.items()}
    for mode, (sample, build) in medians.items():
        print(f'median {mode}: sample {sample:.1f} s + build_profile {build:.1f} s = '
              f'{sample + build:.1f} s')
    print(f"build_profile reused / model: {medians['reused'][1] / medians['model'][1]:.2f}x; "
          f"with the sample: {sum(medians['reused']) / sum(medians['model']):.2f}x")
    print(difference(profiles['model'], profiles['reused']))


if __name__ == '__main__':
    main()
