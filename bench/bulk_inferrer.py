"""BulkInferrer on a real folder plus bad files, against the forward-pass limit measured beside it.

    python bench/bulk_inferrer.py --model work/serving/image_classifier [--images DIR]
        [--batch-sizes 32 64] [--out DIR]

Builds a scratch folder: every photo of --images (default ../shared's
cats_and_dogs_filtered/validation, 1,000 photos in cats/ and dogs/) hard-linked in place,
plus a few bad files (empty, text named .jpg, truncated JPEG, a FIFO, a TIFF named .jpg,
notes.txt, a name that is not UTF-8). Then, in this one process and one after the other:
the frozen base's forward-pass limit at the model's input size (bench/forward_limit.py)
and the BulkInferrer's own code (components/bulk_inferrer/executor.py: score_folder,
what the command line and the stage run) once per batch size. Prints for each:
files accounted for (scored + bad + skipped = listed), accuracy (the folders are class
names), images/s and its ratio to the limit.
"""

import argparse
import os
import pathlib
import sys
import tempfile

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench import forward_limit  # pylint: disable=wrong-import-position
from bench import photos  # pylint: disable=wrong-import-position

PROJECT_ROOT = pathlib.Path(__file__).resolve().parents[1]
DATA_ROOT = PROJECT_ROOT.parent / 'shared' / 'datasets' / 'cats_and_dogs_filtered'
DEFAULT_IMAGES = DATA_ROOT / 'validation'


def build_folder(images: pathlib.Path, dest: pathlib.Path) -> int:
    """Links every file of images under dest and adds bad files; returns how many bad
    or skipped entries were added."""
    for src in sorted(images.rglob('*')):
        if src.is_file():
            photos.link(src, dest / src.relative_to(images))
    jpeg = next(p for p in sorted(images.rglob('*.jpg')))
    extra = dest / 'incoming'
    extra.mkdir()
    (extra / 'empty.jpg').write_bytes(b'')
    (extra / 'text.jpg').write_text('not a photo')
    (extra / 'truncated.jpg').write_bytes(jpeg.read_bytes()[:2000])
    os.mkfifo(extra / 'pipe.jpg')
    from PIL import Image  # pylint: disable=import-outside-toplevel
    Image.new('RGB', (8, 8)).save(extra / 'scan.jpg', 'TIFF')
    (extra / 'notes.txt').write_text('from the phone')
    with open(os.path.join(os.fsencode(extra), b'caf\xe9.jpg'), 'wb') as f:  # Latin-1 name
        f.write(jpeg.read_bytes())
    return 6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--model', required=True,
                        help='pushed version, serving base folder or SavedModel')
    parser.add_argument('--images', default=str(DEFAULT_IMAGES))
    parser.add_argument('--batch-sizes', type=int, nargs='+', default=[32, 64])
    parser.add_argument('--limit-images', type=int, default=512,
                        help='photos the forward-pass limit is timed on')
    parser.add_argument('--out', help='folder for the CSVs (default: a temporary folder)')
    args = parser.parse_args()
    from runlog import noise  # pylint: disable=import-outside-toplevel
    noise.quiet_tensorflow()
    from components.bulk_inferrer import executor  # pylint: disable=import-outside-toplevel
    from components.bulk_inferrer import scoring  # pylint: disable=import-outside-toplevel
    from models import tflite_export  # pylint: disable=import-outside-toplevel
    from pipeline import configs  # pylint: disable=import-outside-toplevel
    from models import trainer_settings  # pylint: disable=import-outside-toplevel

    model_dir = scoring.resolve_model_dir(os.path.abspath(args.model))
    function, _ = tflite_export.saved_model_pixels_function(model_dir)
    size = int(function.structured_input_signature[0][0].shape[1])
    with tempfile.TemporaryDirectory(prefix='bulk-bench-') as scratch:
        folder = pathlib.Path(scratch) / 'photos'
        added = build_folder(pathlib.Path(args.images), folder)
        print(f'folder: {args.images} + {added} bad or skipped files; model {model_dir} '
              f'(input {size}x{size})')

        def limit_now():
            rates, _ = forward_limit.measure(str(DATA_ROOT), args.limit_images,
                                             configs.SHARED_WEIGHTS, size,
                                             trainer_settings.Training.batch_size)
            best = max(rates, key=rates.get)
            print(f'forward-pass limit (frozen base, decoded pixels): {rates[best]:.1f} '
                  f'images/s at batch {best}', flush=True)
            return rates[best]

        # Measured before and after the runs: the ratios use the mean of the two.
        before = limit_now()
        results = []
        out = pathlib.Path(args.out or scratch)
        for batch_size in args.batch_sizes:
            scores = out / f'scores-batch{batch_size}.csv'
            summary = executor.score_folder(str(folder), model_dir, str(scores),
                                            batch_size=batch_size, say=lambda _: None)
            print(f'batch {batch_size}: {summary["images_per_second"]:.1f} images/s',
                  flush=True)
            results.append((batch_size, summary))
        limit = (before + limit_now()) / 2
        for batch_size, summary in results:
            listed = summary['scored'] + summary['bad'] + summary['skipped']
            accuracy = summary['accuracy']
            print(f'batch {batch_size}: {summary["files"]} files = {summary["scored"]} '
                  f'scored + {summary["bad"]} bad + {summary["skipped"]} skipped ({listed} '
                  f'listed); accuracy {accuracy["accuracy"]:.4f} on {accuracy["images"]} photos '
                  f'in class folders; {summary["images_per_second"]:.1f} images/s = '
                  f'{summary["images_per_second"] / limit:.2f}x the forward-pass limit '
                  f'({summary["seconds"]["score"]:.1f} s; model load '
                  f'{summary["seconds"]["load_model"]:.1f} s, listing '
                  f'{summary["seconds"]["list"]:.2f} s)')
        print('bad and skipped: ' + '; '.join(
            f'{count} x {reason}' for reason, count in results[0][1]['reasons'].items()))
    return 0


if __name__ == '__main__':
    sys.exit(main())
