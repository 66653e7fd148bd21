"""history.json: written into the Trainer's model_run, read back by the run report."""

from models import history


def test_history_reads_back_what_was_saved(tmp_path):
    saved = {'loss': [0.5, 0.25], 'views': 3, 'seconds': {'fit': 1.5}, 'tuned': {}}
    history.save(saved, str(tmp_path))
    assert (tmp_path / history.HISTORY_FILE).exists()
    assert history.read(str(tmp_path)) == saved


def test_no_history_reads_as_none(tmp_path):
    assert history.read(str(tmp_path)) is None
