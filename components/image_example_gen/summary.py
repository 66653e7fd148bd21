"""Pure: per-file manifest entries -> the ExampleGen report (counts, bad files, duplicates).

A manifest entry is a dict with keys: path, status ('ok', 'bad' or 'ignored'),
reason, label_name, split_dir; ok entries add split, label, sha256, height, width,
channels, format, bytes; entries that came through a symbolic link add link,
link_target and link_outside_root. There is one entry per file under the data
root (and per folder or link that is not walked, with the reason), so
files = images + bad + ignored. Paths are text: bytes that are not UTF-8 are
shown as '\xff' (files.display).

The report is built streaming: ingested images are only counted (bad and
ignored files are listed); duplicate groups come grouped by hash from Beam
(`duplicate_group` for each sha256 with more than one file), never from a
table of every image's hash in one process.
"""

import collections
from typing import Any, Dict, Iterable, List, Optional, Sequence

from models import features

OK, BAD, IGNORED = 'ok', 'bad', 'ignored'

# Files named in an error message; the report lists all of them.
_MESSAGE_LIMIT = 10
# Bad files, conflicting labels and links named on the console; the report lists all.
CONSOLE_LIMIT = 5
_CONTROL = {code: f'\\x{code:02x}' for code in (*range(32), 127)}


class BadDataError(RuntimeError):
    """Too many files could not be read as images."""


def copy_of(entry: Dict[str, Any]) -> Dict[str, Any]:
    """What a duplicate group says about one ingested file."""
    return {'split': entry['split'], 'path': entry['path'], 'label_name': entry['label_name']}


def duplicate_group(sha256: str, copies: Iterable[Dict[str, Any]]) -> Optional[Dict[str, Any]]:
    """The duplicate group of one content hash (copies: `copy_of` each file); None for one file."""
    files = sorted(copies, key=lambda f: f['path'])
    if len(files) < 2:
        return None
    return {'sha256': sha256, 'files': files,
            'cross_split': len({f['split'] for f in files}) > 1,
            'cross_class': len({f['label_name'] for f in files}) > 1}


def summarize(entries: Iterable[Dict[str, Any]], duplicates: Iterable[Dict[str, Any]],
              class_names: Sequence[str], split_names: Sequence[str], *,
              max_bad_fraction: float, hash_split: bool, eval_fraction: float = 0.0,
              test_fraction: float = 0.0,
              stop_on_conflicting_labels: bool = features.STOP_ON_CONFLICTING_LABELS
              ) -> Dict[str, Any]:
    """Builds the report of one ExampleGen run.

    Args:
      entries: manifest entries; ok entries carry the split they went to.
      duplicates: the `duplicate_group`s of the run.
      class_names: class names.
      split_names: output split names, in order.
      max_bad_fraction: the allowed share of bad files among image files.
      hash_split: whether splits come from hashing (duplicates then share a split).
      eval_fraction: the share of each class sent to eval, for a hash split.
      test_fraction: the share of each class sent to test, for a hash split.
      stop_on_conflicting_labels: whether images filed under two classes fail
        the run (`check`).

    Returns:
      A JSON-able dict: files under the root and what became of them (per
      split and label counts, bad and ignored files with reasons, ignored
      counts per reason), duplicate groups (whether they cross splits or
      classes), the bad fraction, and the symbolic links followed (each with
      its target and how many entries came through it).
    """
    splits = {name: {'images': 0, 'by_label': {label: 0 for label in class_names}}
              for name in split_names}
    bad, ignored = [], []
    links: Dict[str, Dict[str, Any]] = {}
    files = 0
    for entry in entries:
        files += 1
        if 'link' in entry:
            link = links.setdefault(entry['link'], {
                'link': entry['link'], 'target': entry['link_target'],
                'outside_root': entry['link_outside_root'], 'files': 0, 'images': 0})
            link['files'] += 1
            link['images'] += entry['status'] == OK
        if entry['status'] == OK:
            split = splits[entry['split']]
            split['images'] += 1
            split['by_label'][entry['label_name']] += 1
        elif entry['status'] == BAD:
            bad.append({'path': entry['path'], 'reason': entry['reason']})
        else:
            ignored.append({'path': entry['path'], 'reason': entry['reason']})
    bad.sort(key=lambda f: f['path'])
    ignored.sort(key=lambda f: f['path'])
    duplicates = sorted(duplicates, key=lambda d: d['sha256'])
    good = sum(s['images'] for s in splits.values())
    readable = good + len(bad)
    return {
        'class_names': list(class_names),
        'split_method': (f'per class by hash of the image bytes ({eval_fraction:.0%} of each '
                         'class to eval' + (f', {test_fraction:.0%} to test' if test_fraction
                                             else '') + ')' if hash_split else 'folders'),
        'splits': splits,
        'files': files,
        'images': good,
        'bad_files': bad,
        'ignored_files': ignored,
        'bad_fraction': len(bad) / readable if readable else 0.0,
        'max_bad_fraction': max_bad_fraction,
        'duplicates': duplicates,
        'cross_split_duplicates': sum(d['cross_split'] for d in duplicates),
        'cross_class_duplicates': sum(d['cross_class'] for d in duplicates),
        'ignored_by_reason': dict(sorted(collections.Counter(
            i['reason'] for i in ignored).items())),
        'links': [links[path] for path in sorted(links)],
        'stop_on_conflicting_labels': stop_on_conflicting_labels,
    }


def check(report: Dict[str, Any], report_path: str) -> None:
    """Raises BadDataError when the report shows unusable data.

    Args:
      report: the output of `summarize`.
      report_path: where the full report was written, named in the message.

    Raises:
      BadDataError: no readable image at all, too many bad files, a class
        without images in the train or the eval split, or (with
        stop_on_conflicting_labels) an image filed under two classes.
    """
    bad: List[Dict[str, str]] = report['bad_files']
    listed = '; '.join(f"{b['path']}: {b['reason']}" for b in bad[:_MESSAGE_LIMIT])
    more = f' (and {len(bad) - _MESSAGE_LIMIT} more)' if len(bad) > _MESSAGE_LIMIT else ''
    if report['images'] == 0:
        raise BadDataError(
            f'no readable image in the data root ({len(bad)} bad files: {listed}{more}); '
            f'report: {report_path}')
    if report['bad_fraction'] > report['max_bad_fraction']:
        raise BadDataError(
            f"{len(bad)} of {report['images'] + len(bad)} image files "
            f"({report['bad_fraction']:.1%}) cannot be read, more than max_bad_fraction "
            f"{report['max_bad_fraction']:.1%}: {listed}{more}; report: {report_path}")
    conflicts = conflicting_labels(report)
    if conflicts and report.get('stop_on_conflicting_labels'):
        named = '; '.join(conflicts[:_MESSAGE_LIMIT])
        more = (f' (and {len(conflicts) - _MESSAGE_LIMIT} more)'
                if len(conflicts) > _MESSAGE_LIMIT else '')
        raise BadDataError(
            f'{len(conflicts)} {_images(len(conflicts))} filed under more than one class '
            f'(conflicting labels, stop_on_conflicting_labels is on): {named}{more}; keep '
            f'each in the folder of its class only; report: {report_path}')
    for name in (features.TRAIN_SPLIT, features.EVAL_SPLIT):
        counts = report['splits'].get(name, {}).get('by_label', {})
        missing = [label for label, count in counts.items() if not count]
        if not missing:
            continue
        totals = ', '.join(
            f"{label}: {sum(s['by_label'].get(label, 0) for s in report['splits'].values())}"
            for label in missing)
        them = 'them' if len(missing) > 1 else 'it'
        advice = (f'add images of {them} to that split folder' if report['split_method'] ==
                  'folders' else 'a class needs at least 2 distinct images to have one in each '
                  f'split (3 with a test split); add images of {them}')
        raise BadDataError(
            f"the {name} split has no image of class{'es' if len(missing) > 1 else ''} "
            f"{', '.join(missing)} (images in all splits: {totals}): the model cannot "
            f'{"learn" if name == features.TRAIN_SPLIT else "be evaluated on"} '
            f'{them}; {advice}; report: {report_path}')


def _images(count: int) -> str:
    return 'image is' if count == 1 else 'images are'


def one_line(path: str) -> str:
    """A path with its control characters (a newline in a name) shown as '\\x0a'."""
    return path.translate(_CONTROL)


def conflicting_labels(report: Dict[str, Any]) -> List[str]:
    """'cats/a.jpg = dogs/b.jpg' for each image whose bytes are filed under several classes."""
    return [' = '.join(one_line(f['path']) for f in group['files'])
            for group in report['duplicates'] if group['cross_class']]


def console_lines(report: Dict[str, Any], report_path: str) -> List[str]:
    """What the runner's console says about the files of a run: the counts, the bad
    files by name (the first CONSOLE_LIMIT, then how many more and where they are
    listed), a warning for images filed under two classes, and the images that came
    through symbolic links out of the data root.

    Args:
      report: the output of `summarize` (image_report.json).
      report_path: where the report is, named when a list is cut short.
    """
    bad = report['bad_files']
    lines = [f"data: {report['files']} files = {report['images']} images used + "
             f"{len(bad)} bad + {len(report['ignored_files'])} ignored; "
             + ', '.join(f"{name} {split['images']}" for name, split in report['splits'].items())]
    lines += [f"bad: {one_line(b['path'])}: {b['reason']}" for b in bad[:CONSOLE_LIMIT]]
    if len(bad) > CONSOLE_LIMIT:
        lines.append(f'bad: ... and {len(bad) - CONSOLE_LIMIT} more, all listed in {report_path}')
    conflicts = conflicting_labels(report)
    if conflicts:
        more = (f' and {len(conflicts) - CONSOLE_LIMIT} more (see {report_path})'
                if len(conflicts) > CONSOLE_LIMIT else '')
        lines.append(
            f'warning: {len(conflicts)} {_images(len(conflicts))} filed under more than one '
            f'class (conflicting labels) and trained under each: '
            f'{"; ".join(conflicts[:CONSOLE_LIMIT])}{more}; keep each in one class folder, '
            'or stop such runs with stop_on_conflicting_labels (--stop-on-conflicting-labels)')
    outside = [link for link in report.get('links', []) if link['outside_root']
               and link['images']]
    if outside:
        named = ', '.join(f"{one_line(link['link'])} -> {one_line(link['target'])}"
                          for link in outside[:CONSOLE_LIMIT])
        more = f' and {len(outside) - CONSOLE_LIMIT} more' if len(outside) > CONSOLE_LIMIT else ''
        images = sum(link['images'] for link in outside)
        lines.append(f"{images} {'image' if images == 1 else 'images'} came through "
                     f"{len(outside)} symbolic {'link' if len(outside) == 1 else 'links'} "
                     f'out of the data root: {named}{more}')
    return lines
