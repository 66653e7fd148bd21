"""reports/plots.py (the plots the run report added) and reports/html.py (escaping)."""

import base64
from html import parser as html_parser
import io

import numpy as np
import pytest
from PIL import Image

from pages import html
from pages import plots


def _png(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    assert image.format == 'PNG'
    return image


class _Elements(html_parser.HTMLParser):
    """Start tags (with attributes) and text of a fragment."""

    def __init__(self):
        super().__init__()
        self.tags, self.text = [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)


def _parse(markup: str) -> _Elements:
    parser = _Elements()
    parser.feed(str(markup))
    parser.close()
    return parser


def test_metric_by_variant_draws_one_line_per_variant_and_panel():
    histories = {'transfer': {'val_accuracy': [0.6, 0.8, 0.95], 'accuracy': [0.5, 0.7, 0.9]},
                 'cnn': {'val_accuracy': [0.5, 0.55, 0.6], 'accuracy': [0.5, 0.6, 0.65]}}
    one = _png(plots.metric_by_variant(histories, metrics=('val_accuracy',)))
    two = _png(plots.metric_by_variant(histories))
    assert one.width > 0 and one.height > 0
    # A second panel makes the figure wider, not taller.
    assert two.width > 1.6 * one.width
    assert abs(two.height - one.height) < 0.2 * one.height
    pixels = np.asarray(two.convert('RGB'), dtype=np.int32)
    # matplotlib's first two line colours (C0 blue, C1 orange) are drawn.
    for colour in ((31, 119, 180), (255, 127, 14)):
        assert (np.abs(pixels - colour).sum(axis=-1) < 30).sum() > 50, colour


def test_metric_by_variant_skips_missing_metrics():
    data = plots.metric_by_variant({'cnn': {'accuracy': [0.5, 0.6]}}, metrics=('val_accuracy',))
    pixels = np.asarray(_png(data).convert('RGB'), dtype=np.int32)
    assert (np.abs(pixels - (31, 119, 180)).sum(axis=-1) < 30).sum() == 0


@pytest.mark.parametrize('value, expected', [(-1.0, 0), (0.0, 128), (1.0, 255), (-3.0, 0),
                                             (2.0, 255)])
def test_to_uint8_maps_the_transform_range_to_pixels(value, expected):
    out = plots.to_uint8(np.full((2, 2, 3), value, dtype=np.float32))
    assert out.dtype == np.uint8 and out.shape == (2, 2, 3)
    assert out.min() == out.max() == expected


def test_to_uint8_with_another_range():
    out = plots.to_uint8(np.array([0.0, 127.5, 255.0]), low=0.0, high=255.0)
    assert out.tolist() == [0, 128, 255]


def test_table_escapes_cells_but_not_markup():
    fragment = html.table([['<script>alert(1)</script>', html.status(True)]],
                          headers=['<b>label</b>', 'ok'])
    assert '<script>' not in fragment
    assert '&lt;script&gt;alert(1)&lt;/script&gt;' in fragment
    assert '&lt;b&gt;label&lt;/b&gt;' in fragment
    parsed = _parse(fragment)
    assert ('script', {}) not in parsed.tags
    assert ('span', {'class': 'ok'}) in parsed.tags
    assert '<script>alert(1)</script>' in ''.join(parsed.text)


def test_counts_table_has_a_row_per_class_and_the_totals():
    counts = {'train': {'Hunde': 30, 'Été': 10, '<b>x</b>': 0}, 'eval': {'Hunde': 6, 'Été': 2}}
    names = ['Hunde', 'Été', '<b>x</b>']
    cells = [text.strip() for text in _parse(html.counts_table(counts, names)).text
             if text.strip()]
    assert cells == ['class', 'train', 'eval', 'Hunde', '30', '6', 'Été', '10', '2',
                     '<b>x</b>', '0', '0', 'all classes', '40', '8']
    shares = [text.strip() for text in _parse(
        html.counts_table(counts, names, shares=True)).text if text.strip()]
    assert shares[3:6] == ['Hunde', '30 (75.0%)', '6 (75.0%)'] and shares[-3:] == [
        'all classes', '40', '8']
    assert '<b>x</b>' not in html.counts_table(counts, names)      # escaped


def test_label_counts_slants_many_or_long_class_names():
    few = _png(plots.label_counts({'train': {'cats': 3, 'dogs': 4}}))
    many = _png(plots.label_counts({'train': {f'Class {i:02d} – ünïcode': i for i in range(15)}}))
    # Slanted labels need height below the bars; upright short ones do not.
    assert many.height > few.height
    square = [[1, 0], [0, 1]]
    upright = _png(plots.confusion_matrix(square, ['cats', 'dogs']))
    slanted = _png(plots.confusion_matrix(square, ['Chats domestiques', 'Hunde']))
    assert slanted.height > upright.height
    assert not plots.crowded(['cats', 'dogs', 'Hunde'])
    assert plots.crowded(['cats', 'Chats domestiques']) and plots.crowded(list('abcdefg'))


def test_paragraph_bullet_list_link_and_details_escape_text():
    label = '<script>x</script>'
    parts = [html.paragraph(label), html.bullet_list([label, html.status(False)]),
             html.link('a"b.html', label), html.details(label, [label, html.preformatted(label)]),
             html.preformatted('{"a": "<b>"}')]
    fragment = ''.join(str(p) for p in parts)
    assert '<script>' not in fragment and '<b>' not in fragment
    parsed = _parse(fragment)
    tags = [tag for tag, _ in parsed.tags]
    assert 'script' not in tags and 'b' not in tags
    assert tags.count('li') == 2 and tags.count('pre') == 2 and 'details' in tags
    assert ('a', {'href': 'a"b.html'}) in parsed.tags
    assert ''.join(parsed.text).count(label) == 6


def test_image_alt_is_escaped_and_data_uri_decodes():
    png = plots.bars({'a': 1.0, 'b': 2.5}, 'title', 'seconds')
    tag = html.image(png, '"><script>')
    parsed = _parse(tag)
    [(name, attrs)] = parsed.tags
    assert name == 'img' and attrs['alt'] == '"><script>'
    prefix = 'data:image/png;base64,'
    assert attrs['src'].startswith(prefix)
    assert base64.b64decode(attrs['src'][len(prefix):]) == png


def test_page_escapes_headings_and_title():
    page = html.page('<i>t</i>', [html.Section('<script>s</script>', [html.paragraph('x')])],
                     subtitle='<u>sub</u>')
    parsed = _parse(page)
    tags = [tag for tag, _ in parsed.tags]
    assert 'script' not in tags and 'i' not in tags and 'u' not in tags
    assert '<script>s</script>' in ''.join(parsed.text)


def test_history_curves_mark_where_fine_tuning_started():
    history = {'accuracy': [0.6, 0.8, 0.9, 0.93], 'val_accuracy': [0.7, 0.85, 0.9, 0.95],
               'loss': [0.7, 0.4, 0.3, 0.2], 'val_loss': [0.6, 0.35, 0.3, 0.2]}

    def green_pixels(data: bytes) -> int:  # matplotlib's tab:green, antialiased
        red, green, blue = np.moveaxis(np.asarray(_png(data).convert('RGB'), dtype=np.int32),
                                       -1, 0)
        return int(((green - red > 60) & (green - blue > 60)).sum())

    plain = green_pixels(plots.history_curves(dict(history, fine_tune_from_epoch=None), 't'))
    marked = green_pixels(plots.history_curves(dict(history, fine_tune_from_epoch=2), 't'))
    # Nothing else is green; one dashed line per panel (accuracy, loss) and its legend entry.
    assert plain == 0
    assert marked > 200, marked
