"""Scores a folder of photos with a model directory: the BulkInferrer stage's own code.

    python -m components.bulk_inferrer --images DIR --model DIR --out scores.csv

--model takes a pushed version (work/serving/image_classifier/<version>), a serving
base folder (its highest version), a Trainer's model artifact or any SavedModel with
the serving signature. Writes one CSV row per entry under --images (scored, bad or
skipped, with the reason) and scores.summary.json beside it; prints progress on long
runs, then the counts, the accuracy when folder names are class names, and images/s.
Exit status 0 when done, 2 for a user error (no folder, no model), printed as `error:`.
"""

import argparse
import os
import sys
from typing import Optional, Sequence

EXIT_OK = 0
EXIT_USAGE = 2


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    from components.bulk_inferrer import spec  # pylint: disable=import-outside-toplevel
    parser = argparse.ArgumentParser(prog='python -m components.bulk_inferrer',
                                     description=__doc__.split('\n')[0])
    parser.add_argument('--images', required=True, help='folder of photos, any depth')
    parser.add_argument('--model', required=True,
                        help='SavedModel folder, pushed version, serving base folder or '
                             'Trainer model artifact')
    parser.add_argument('--out', required=True, help='the CSV to write')
    parser.add_argument('--batch-size', type=int, default=spec.DEFAULTS[spec.BATCH_SIZE_KEY])
    parser.add_argument('--max-file-bytes', type=int,
                        default=spec.DEFAULTS[spec.MAX_FILE_BYTES_KEY],
                        help='larger files are reported as bad, not read (default %(default)s)')
    parser.add_argument('--max-pixels', type=int, default=spec.DEFAULTS[spec.MAX_PIXELS_KEY],
                        help='larger images are reported as bad, not decoded '
                             '(default %(default)s)')
    parser.add_argument('--verbose', action='store_true',
                        help='also show TensorFlow\'s own log lines')
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    verbose = '--verbose' in argv
    if not verbose:
        # TensorFlow's C++ decoder logs an error line per failed attempt on a broken
        # JPEG; the CSV already holds each bad file's reason.
        os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')
    from runlog import noise  # pylint: disable=import-outside-toplevel
    # Before the arguments: their defaults import TensorFlow, whose start-up noise this filters.
    noise.quiet_logs(verbose)
    args = parse_args(argv)
    from components.bulk_inferrer import executor  # pylint: disable=import-outside-toplevel
    try:
        executor.score_folder(os.path.abspath(args.images), os.path.abspath(args.model),
                              os.path.abspath(args.out), batch_size=args.batch_size,
                              max_file_bytes=args.max_file_bytes, max_pixels=args.max_pixels,
                              say=lambda line: print(line, flush=True))
    except (NotADirectoryError, ValueError) as e:
        print(f'error: {e}', file=sys.stderr)
        return EXIT_USAGE
    return EXIT_OK


if __name__ == '__main__':
    sys.exit(main())
