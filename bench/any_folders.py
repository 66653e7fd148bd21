"""The pipeline on a user's own layout: other class names, nested folders, junk files.

    python bench/any_folders.py [--source DIR] [--synthetic-class] [--epochs N]

Builds, in a temporary folder, a root laid out as a user's photo export would be,
from the photos of --source (default ../shared/datasets/cats_and_dogs_filtered,
train/ and validation/ pooled): 'Katzen' and 'Hunde' with a third of each class
directly in the class folder (upper-case .JPG), a third in 'Urlaub 2019/' and a
third in 'phone export/DCIM/'; junk beside them (.DS_Store, Thumbs.db, a README
at the top, __MACOSX/ resource files, a notes file) and a few broken files. With
--synthetic-class, a third class 'Sonstiges (synthetisch)' of generated pictures.
No split folders: the pipeline splits per class by content hash.

Runs the whole pipeline with the default settings and prints the data report's
file accounting (files on disk = used + bad + ignored, by reason), the images per
class and split, the label rules, eval accuracy per class and the wall time.
Prints numbers; asserts nothing.
"""

import argparse
import collections
import io
import json
import os
import pathlib
import random
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench import photos  # pylint: disable=wrong-import-position

SUBFOLDERS = ('', 'Urlaub 2019', 'phone export/DCIM')
CLASS_NAMES = {'cats': 'Katzen', 'dogs': 'Hunde'}
SYNTHETIC = 'Sonstiges (synthetisch)'


def _synthetic(index: int) -> bytes:
    from PIL import Image  # pylint: disable=import-outside-toplevel
    rng = random.Random(index)
    image = Image.new('RGB', (rng.randint(200, 500), rng.randint(200, 500)),
                      tuple(rng.randrange(256) for _ in range(3)))
    for _ in range(5):
        box = [rng.randrange(image.width), rng.randrange(image.height)]
        box += [box[0] + rng.randint(10, 120), box[1] + rng.randint(10, 120)]
        image.paste(tuple(rng.randrange(256) for _ in range(3)), box)
    out = io.BytesIO()
    image.save(out, 'JPEG', quality=90)
    return out.getvalue()


def build_root(source: pathlib.Path, dest: pathlib.Path, synthetic: bool) -> int:
    """Writes the user-like root; returns the number of files written."""
    written = 0
    for label, name in CLASS_NAMES.items():
        originals = sorted(source.glob(f'*/{label}/*.jpg'))
        for i, photo in enumerate(originals):
            folder = dest / name / SUBFOLDERS[i % 3]
            stem = photo.stem if i % 3 else photo.stem.upper()
            photos.link(photo, folder / f'{stem}{".JPG" if i % 3 == 0 else photo.suffix}')
            written += 1
        for junk in ('.DS_Store', 'Thumbs.db', 'Urlaub 2019/notes.txt'):
            (dest / name / junk).parent.mkdir(parents=True, exist_ok=True)
            (dest / name / junk).write_bytes(b'not a photo\n')
            written += 1
        (dest / '__MACOSX' / name).mkdir(parents=True, exist_ok=True)
        (dest / '__MACOSX' / name / f'._{originals[0].name}').write_bytes(b'\0' * 82)
        broken = originals[1].read_bytes()
        (dest / name / 'phone export' / 'DCIM' / 'IMG_0001.JPG').write_bytes(
            broken[:len(broken) // 4])
        written += 2
    if synthetic:
        folder = dest / SYNTHETIC
        folder.mkdir(parents=True)
        for i in range(1000):
            (folder / f'bild {i:04d}.jpeg').write_bytes(_synthetic(i))
        written += 1000
    (dest / 'README.txt').write_text('photos for the classifier\n')
    return written + 1


def read_results(config, metadata_path: str):
    """(image report, data verdict, Evaluation) of the latest run."""
    from tfx.types import standard_component_specs as keys  # pylint: disable=import-outside-toplevel
    from components.data_report import spec as data_report_spec  # pylint: disable=import-outside-toplevel
    from components.image_example_gen import spec  # pylint: disable=import-outside-toplevel
    from pipeline import nodes  # pylint: disable=import-outside-toplevel
    from reports import mlmd_runs  # pylint: disable=import-outside-toplevel
    from reports import run_report  # pylint: disable=import-outside-toplevel
    run = mlmd_runs.latest_run(metadata_path, config.pipeline_name)
    examples = run.output(nodes.EXAMPLE_GEN, keys.EXAMPLES_KEY)
    report = spec.read_report(examples.uri)
    verdict = data_report_spec.read_verdict(
        run.output(nodes.DATA_REPORT, data_report_spec.REPORT_KEY).uri)
    evaluation = run_report.load_evaluation(run.output(nodes.EVALUATOR, keys.EVALUATION_KEY).uri)
    return report, verdict, evaluation


def main() -> int:
    from pipeline import configs  # pylint: disable=import-outside-toplevel
    parser = argparse.ArgumentParser(description=__doc__.split('\n', maxsplit=1)[0])
    parser.add_argument('--source', default=str(configs.SHARED / 'datasets' /
                                                'cats_and_dogs_filtered'))
    parser.add_argument('--synthetic-class', action='store_true')
    parser.add_argument('--epochs', type=int, default=10)
    parser.add_argument('--work-dir', help='default: a new temporary folder')
    parser.add_argument('--verbose', action='store_true', help='TF, Beam and TFX logs too')
    args = parser.parse_args()

    from pipeline import console  # pylint: disable=import-outside-toplevel
    work_dir = pathlib.Path(args.work_dir or tempfile.mkdtemp(prefix='bench_any_folders_'))
    with console.Console(str(work_dir / 'bench.log'), verbose=args.verbose) as con:
        import local_runner  # pylint: disable=import-outside-toplevel
        from components.image_example_gen import layout  # pylint: disable=import-outside-toplevel

        data_root = work_dir / 'my photos'
        shutil.rmtree(data_root, ignore_errors=True)
        written = build_root(pathlib.Path(args.source), data_root, args.synthetic_class)
        root = layout.inspect_data_root(str(data_root))
        config = configs.local(str(work_dir), root.root, presplit=root.presplit,
                               class_names=root.class_names, images=root.images,
                               epochs=args.epochs, accuracy_threshold=0.0,
                               enable_cache=False)
        metadata_path = configs.metadata_path(str(work_dir))
        start = time.perf_counter()
        local_runner.run(config, metadata_path, con)
        wall = time.perf_counter() - start
        results = read_results(config, metadata_path)
    report, verdict, evaluation = results

    print(f'data root: {data_root} (from {args.source}); classes: {", ".join(root.class_names)}')
    print(f"files: {written} written = {report['files']} in the report = {report['images']} "
          f"used + {len(report['bad_files'])} bad + {len(report['ignored_files'])} ignored")
    for reason, count in report['ignored_by_reason'].items():
        print(f'  ignored, {reason}: {count}')
    for bad in report['bad_files']:
        print(f"  bad: {bad['path']}: {bad['reason']}")
    print(f"split: {report['split_method']}")
    for split, counts in report['splits'].items():
        print(f"  {split}: {counts['images']} images: " + ', '.join(
            f'{label} {n}' for label, n in counts['by_label'].items()))
    print(f"data verdict: {'PASSED' if verdict['passed'] else 'FAILED'}; rules: "
          f"{json.dumps(verdict['label_rules'], ensure_ascii=False)}")
    recalls = collections.OrderedDict(
        (label, evaluation.metrics.get(('recall', i))) for i, label in enumerate(root.class_names))
    print(f'eval accuracy {evaluation.accuracy:.4f} on {int(evaluation.example_count)} images; '
          'recall per class: ' + ', '.join(f'{label} {value:.3f}' for label, value in
                                            recalls.items() if value is not None))
    print(f'pipeline wall time: {wall:.0f} s; work dir {work_dir}; log {con.log_path}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
