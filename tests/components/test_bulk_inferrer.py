"""BulkInferrer: the safe folder walk and reader, the CSV rows, the scorer, the command line
and the pipeline stage, on real photos and the shared small run's model."""

import csv
import os
import pathlib
import re
import shutil
import subprocess
import sys
import zlib

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image
from tfx.orchestration.portable import data_types
from tfx.types import standard_artifacts

from components.bulk_inferrer import __main__ as command
from components.bulk_inferrer import driver
from components.bulk_inferrer import executor
from components.bulk_inferrer import files
from components.bulk_inferrer import rows
from components.bulk_inferrer import scoring
from components.bulk_inferrer import spec
from models import features
from reports import mlmd_runs
from tests import data

UNDECODABLE = b'bad\xff name.jpg'     # not UTF-8


def _pushed_dir(run) -> str:
    return mlmd_runs.custom_property(run.output('ImagePusher', 'pushed_model'),
                                     'pushed_destination')


def make_folder(root: pathlib.Path) -> dict:
    """Unlabelled-looking photos at several depths with odd names, in class-named folders
    (so the accuracy shows), plus every kind of file that must not be scored.

    Returns:
      {display path: (status, reason start or expected folder class)} for every entry.
    """
    photo = data.photos('validation', 'cats', 1)[0]
    expected = {}
    for i, src in enumerate(data.photos('validation', 'cats', 3)):
        folder = root / 'cats' / ('2019/phone export' if i == 0 else '')
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy(src, folder / f'IMG {i}, "cat".JPG')
        expected[str((folder / f'IMG {i}, "cat".JPG').relative_to(root))] = (rows.SCORED, 'cats')
    for src in data.photos('validation', 'dogs', 3):
        (root / 'dogs').mkdir(exist_ok=True)
        shutil.copy(src, root / 'dogs' / f'Été {src.name}')
        expected[f'dogs/Été {src.name}'] = (rows.SCORED, 'dogs')
    (root / 'unsorted').mkdir()
    shutil.copy(photo, root / 'unsorted' / 'no class.jpeg')
    expected['unsorted/no class.jpeg'] = (rows.SCORED, '')
    with open(os.path.join(os.fsencode(root / 'unsorted'), UNDECODABLE), 'wb') as f:
        f.write(photo.read_bytes())
    expected['unsorted/bad\\xff name.jpg'] = (rows.SCORED, '')
    for name, payload in data.bad_files(photo).items():
        (root / 'unsorted' / name).write_bytes(payload)
    expected['unsorted/empty.jpg'] = (rows.BAD, 'empty file')
    expected['unsorted/text.jpg'] = (rows.BAD, 'not a readable image')
    # Pillow reads the truncated JPEG's header; TensorFlow's decoder refuses the rest.
    expected['unsorted/truncated.jpg'] = (rows.BAD, 'cannot decode')
    Image.new('RGB', (8, 8)).save(root / 'unsorted' / 'scan.gif')
    expected['unsorted/scan.gif'] = (rows.SCORED, '')
    Image.new('RGB', (8, 8)).save(root / 'unsorted' / 'scan.jpg', 'TIFF')
    expected['unsorted/scan.jpg'] = (rows.BAD, 'unsupported image format TIFF')
    os.mkfifo(root / 'unsorted' / 'pipe.jpg')
    expected['unsorted/pipe.jpg'] = (rows.SKIPPED, 'not a regular file (a FIFO)')
    os.symlink(root / 'dogs', root / 'unsorted' / 'link to dogs')
    expected['unsorted/link to dogs'] = (rows.SKIPPED, 'link to a folder')
    os.symlink(root / 'gone.jpg', root / 'unsorted' / 'dangling.jpg')
    expected['unsorted/dangling.jpg'] = (rows.BAD, 'cannot open')
    (root / 'unsorted' / 'notes.txt').write_text('shot on a phone')
    expected['unsorted/notes.txt'] = (rows.SKIPPED, 'not an image file name')
    (root / 'unsorted' / 'IMG_1.HEIC').write_bytes(b'x')
    expected['unsorted/IMG_1.HEIC'] = (rows.SKIPPED, '.heic photos are not read')
    (root / 'unsorted' / '.DS_Store').write_bytes(b'x')
    expected['unsorted/.DS_Store'] = (rows.SKIPPED, 'hidden file')
    (root / '__MACOSX').mkdir()
    (root / '__MACOSX' / '._x.jpg').write_bytes(b'x')
    expected['__MACOSX'] = (rows.SKIPPED, 'inside hidden or system folder __MACOSX/')
    return expected


def test_walk_lists_every_entry_once_and_skips_what_is_not_a_regular_image_file(tmp_path):
    expected = make_folder(tmp_path)
    listed = list(files.walk(str(tmp_path)))
    shown = {files.display_path(entry.path): entry.skipped for entry in listed}
    assert len(shown) == len(listed) == len(expected)
    for path, (status, detail) in expected.items():
        if status == rows.SKIPPED:
            assert shown[path].startswith(detail), path
        else:
            assert shown[path] is None, path
    # The undecodable name comes back as its bytes.
    [odd] = [e.path for e in listed if files.display_path(e.path).startswith('unsorted/bad')]
    assert os.fsencode(odd) == b'unsorted/' + UNDECODABLE
    with pytest.raises(NotADirectoryError, match='does not exist'):
        list(files.walk(str(tmp_path / 'nothing')))


def test_read_file_refuses_fifos_large_and_empty_files_without_blocking(tmp_path):
    os.mkfifo(tmp_path / 'pipe.jpg')
    with pytest.raises(files.BadFileError, match=r'not a regular file \(a FIFO\)'):
        files.read_file(str(tmp_path), 'pipe.jpg')
    (tmp_path / 'big.jpg').write_bytes(b'x' * 101)
    with pytest.raises(files.BadFileError, match='101 bytes > max_file_bytes 100'):
        files.read_file(str(tmp_path), 'big.jpg', max_bytes=100)
    assert files.read_file(str(tmp_path), 'big.jpg', max_bytes=101) == b'x' * 101
    (tmp_path / 'empty.jpg').write_bytes(b'')
    with pytest.raises(files.BadFileError, match='empty'):
        files.read_file(str(tmp_path), 'empty.jpg')


def test_check_image_reads_only_the_header_and_applies_the_pixel_limit():
    png = data.encode(Image.new('RGB', (40, 30)), 'PNG')
    files.check_image(png, max_pixels=1200)
    with pytest.raises(files.BadFileError, match='40x30 = 1200 pixels > max_pixels 1199'):
        files.check_image(png, max_pixels=1199)
    # A header claiming 30000 x 30000 pixels: refused before anything is decoded.
    huge = bytearray(data.encode(Image.new('L', (1, 1)), 'PNG'))
    huge[16:24] = (30000).to_bytes(4, 'big') * 2
    huge[29:33] = zlib.crc32(bytes(huge[12:29])).to_bytes(4, 'big')   # the IHDR chunk's CRC
    with pytest.raises(files.BadFileError, match='too large'):
        files.check_image(bytes(huge))


def test_rows_and_accuracy_on_files_whose_folder_names_a_class():
    names = ['cats', 'dogs']
    assert rows.folder_class('a/dogs/cats/x.jpg', names) == 'dogs'
    assert rows.folder_class('cats.jpg', names) is None
    tally = rows.Tally(names)
    for path, probabilities in (('cats/a.jpg', [0.9, 0.1]), ('cats/b.jpg', [0.3, 0.7]),
                                ('dogs/c.jpg', [0.2, 0.8]), ('other/d.jpg', [0.6, 0.4])):
        tally.add(rows.row(path, names, status=rows.SCORED,
                           probabilities=np.array(probabilities)))
    tally.add(rows.row('cats/e.jpg', names, status=rows.BAD, reason='empty file (0 bytes)'))
    summary = tally.summary()
    assert (summary['files'], summary['scored'], summary['bad']) == (5, 4, 1)
    assert summary['accuracy'] == {'accuracy': 2 / 3, 'images': 3, 'by_class': {
        'cats': {'accuracy': 0.5, 'images': 2}, 'dogs': {'accuracy': 1.0, 'images': 1}}}
    assert rows.accuracy_line(summary['accuracy']).startswith(
        'accuracy 0.667 on 3 scored files whose folder names a class (cats 0.500 of 2')
    with pytest.raises(ValueError, match='needs a reason'):
        rows.row('x.jpg', names, status=rows.BAD)


def _assert_isolates_bad_images(scorer):
    photos = [p.read_bytes() for p in data.photos('validation', 'dogs', 5)]
    truncated = data.bad_files(data.photos('validation', 'cats', 1)[0])['truncated.jpg']
    answers = scorer.score(photos[:2] + [truncated] + photos[2:] + [b'not an image'])
    assert answers[2].startswith('cannot decode: ') and answers[-1].startswith('cannot decode')
    # The others: what the served signature answers for each photo alone.
    alone = np.concatenate([scorer.probabilities([photo]) for photo in photos])
    np.testing.assert_allclose(np.stack(answers[:2] + answers[3:-1]), alone, atol=1e-5)
    assert scorer.score([]) == []


def test_scorer_isolates_undecodable_images_and_answers_the_others(small_run):
    _, run = small_run
    scorer = scoring.Scorer(scoring.resolve_model_dir(os.path.dirname(_pushed_dir(run))))
    assert scorer.class_names == ['cats', 'dogs']
    _assert_isolates_bad_images(scorer)
    with pytest.raises(ValueError, match='no SavedModel'):
        scoring.resolve_model_dir(str(data.CATS_VS_DOGS))


def test_command_scores_every_file_and_accounts_for_the_rest(small_run, tmp_path):
    _, run = small_run
    expected = make_folder(tmp_path / 'photos')
    out = tmp_path / 'out' / 'scores.csv'
    done = subprocess.run(
        [sys.executable, '-m', 'components.bulk_inferrer', '--images', str(tmp_path / 'photos'),
         '--model', _pushed_dir(run), '--out', str(out), '--batch-size', '4'],
        capture_output=True, text=True, timeout=300, check=False, cwd=str(data.PROJECT_ROOT))
    assert done.returncode == 0, done.stderr
    found = {row[rows.PATH]: row for row in spec.read_scores(str(out))}
    assert set(found) == set(expected)
    for path, (status, detail) in expected.items():
        assert found[path][rows.STATUS] == status, (path, found[path])
        if status == rows.SCORED:
            assert found[path][rows.FOLDER_CLASS] == detail
            probabilities = [float(found[path][rows.probability_column(c)])
                             for c in ('cats', 'dogs')]
            assert sum(probabilities) == pytest.approx(1.0, abs=1e-5)
            assert found[path][rows.PREDICTED] == ['cats', 'dogs'][int(np.argmax(probabilities))]
        else:
            assert found[path][rows.REASON].startswith(detail), (path, found[path])
    # The same answers as the served signature on each photo alone.
    scorer = scoring.Scorer(_pushed_dir(run))
    path = 'dogs/Été ' + data.photos('validation', 'dogs', 1)[0].name
    alone = scorer.probabilities([(tmp_path / 'photos' / path).read_bytes()])[0]
    assert float(found[path][rows.probability_column('dogs')]) == pytest.approx(alone[1],
                                                                                  abs=1e-5)
    summary = spec.read_summary(str(out))
    assert (summary['files'], summary['scored'], summary['bad'], summary['skipped']) == (
        len(expected), 9, 5, 6)
    assert summary['accuracy']['images'] == 6
    assert 'accuracy ' in done.stdout and 'images/s (9 images' in done.stdout
    assert not (tmp_path / 'out' / ('scores.csv' + executor.PARTIAL_SUFFIX)).exists()


def test_a_long_run_says_how_far_it_is(small_run, tmp_path, monkeypatch):
    _, run = small_run
    folder = tmp_path / 'photos'
    for src in data.photos('validation', 'cats', 5):
        (folder / 'cats').mkdir(parents=True, exist_ok=True)
        shutil.copy(src, folder / 'cats' / src.name)
    monkeypatch.setattr(executor, 'PROGRESS_SECONDS', 0.0)   # every batch is "long"
    lines = []
    summary = executor.score_folder(str(folder), _pushed_dir(run), str(tmp_path / 's.csv'),
                                    batch_size=2, say=lines.append)
    progress_lines = [line for line in lines if ' s left' in line]
    assert [line.split(' files')[0] for line in progress_lines] == ['2/5', '4/5']
    assert re.fullmatch(r'2/5 files, \d+ images/s, about \d+ s left', progress_lines[0])
    assert summary['scored'] == 5 and lines[-1] == f'scores: {tmp_path / "s.csv"}'


def test_command_says_what_is_wrong_with_its_arguments(small_run, tmp_path, capsys):
    _, run = small_run
    assert command.main(['--images', str(tmp_path / 'none'), '--model', _pushed_dir(run),
                         '--out', str(tmp_path / 's.csv')]) == command.EXIT_USAGE
    assert 'error: images folder' in capsys.readouterr().err
    assert command.main(['--images', str(tmp_path), '--model', str(tmp_path),
                         '--out', str(tmp_path / 's.csv')]) == command.EXIT_USAGE
    assert 'error: no SavedModel in' in capsys.readouterr().err


def test_executor_scores_nothing_with_an_unblessed_model(small_run, tmp_path):
    _, run = small_run
    model = standard_artifacts.Model()
    model.uri = run.output('Trainer', 'model').uri
    blessing = standard_artifacts.ModelBlessing()
    blessing.set_int_custom_property('blessed', 0)
    result = standard_artifacts.InferenceResult()
    result.uri = str(tmp_path / 'result')
    os.makedirs(result.uri)
    properties = {spec.IMAGES_DIR_KEY: str(data.CATS_VS_DOGS / 'validation'), **spec.DEFAULTS}
    executor.Executor().Do({'model': [model], 'model_blessing': [blessing]},
                           {'inference_result': [result]}, properties)
    assert not os.path.exists(os.path.join(result.uri, spec.SCORES_FILE))
    assert 'not blessed' in result.get_string_custom_property(spec.NOT_SCORED_REASON_PROPERTY)


def test_driver_fingerprint_changes_with_any_file(tmp_path):
    (tmp_path / 'a').mkdir()
    (tmp_path / 'a' / 'x.jpg').write_bytes(b'1')

    def fingerprint():
        info = data_types.ExecutionInfo(exec_properties={spec.IMAGES_DIR_KEY: str(tmp_path)})
        output = driver.Driver(None).run(info)
        return output.exec_properties[spec.FOLDER_FINGERPRINT_KEY].string_value

    first = fingerprint()
    assert first.startswith('entries:1,') and fingerprint() == first
    (tmp_path / 'a' / 'y.jpg').write_bytes(b'2')
    second = fingerprint()
    assert second.startswith('entries:2,')
    (tmp_path / 'a' / 'x.jpg').write_bytes(b'33')
    assert fingerprint() != second


def test_pipeline_stage_scores_the_folder_and_reruns_when_it_changes(small_run, tmp_path):
    pipeline_run, _ = small_run
    photos = tmp_path / 'new photos'
    for src in data.photos('validation', 'cats', 2) + data.photos('validation', 'dogs', 2):
        (photos / src.parent.name).mkdir(parents=True, exist_ok=True)
        shutil.copy(src, photos / src.parent.name / src.name)
    run = pipeline_run.run(bulk_inference_images=str(photos))
    assert run.nodes['BulkInferrer'].state == 'COMPLETE'
    result = run.output('BulkInferrer', 'inference_result')
    scores = os.path.join(result.uri, spec.SCORES_FILE)
    assert [r[rows.STATUS] for r in spec.read_scores(scores)] == [rows.SCORED] * 4
    assert mlmd_runs.custom_property(result, spec.SCORED_PROPERTY) == 4
    # A photo added to the same folder: scored again, not a cache hit.
    (photos / 'cats' / 'empty.jpg').write_bytes(b'')
    again = pipeline_run.run(bulk_inference_images=str(photos))
    assert again.nodes['BulkInferrer'].state == 'COMPLETE'
    result = again.output('BulkInferrer', 'inference_result')
    summary = spec.read_summary(os.path.join(result.uri, spec.SCORES_FILE))
    assert (summary['scored'], summary['bad']) == (4, 1)
