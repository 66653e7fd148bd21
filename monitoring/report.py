"""The monitor's offline HTML report: the verdict in one line, the window (time range and
counts), the images that moved each drifted statistic, every statistic with its threshold."""

from typing import Any, List, Mapping

from pages import html
from pages import plots


def _clock(time: Any) -> str:
    """The time of day of a logged ISO time (the window's dates are in its time range)."""
    return str(time)[11:19] if time else 'no time'


def _thumbnails(finding: Mapping[str, Any], encoded: Mapping[str, bytes]):
    """Thumbnails of a finding's top images when their bytes were logged, else a table."""
    images = finding['images']
    with_bytes = [i for i in images if i['sha256'] in encoded]
    if with_bytes and len(with_bytes) == len(images):
        return html.thumbnails(
            (plots.thumbnail_png(encoded[i['sha256']]),
             f"{i['value']} at {_clock(i['time'])}") for i in images)
    return html.table([[i['value'], i['time'], i['sha256'][:16]] for i in images],
                      [finding['statistic'], 'logged at', 'sha256 (start)'])


def render(verdict: Mapping[str, Any], encoded: Mapping[str, bytes]) -> str:
    """The report page.

    Args:
      verdict: what monitoring.monitor writes to verdict.json.
      encoded: sha256 -> the image's bytes, for the thumbnails (empty when the log
        holds no image bytes).
    """
    drifted = [f for f in verdict['findings'] if f['drifted']]
    sections: List[html.Section] = []
    sections.append(html.Section('Verdict', [
        html.verdict(not verdict['drifted'], verdict['verdict']),
        html.bullet_list(f['words'] for f in drifted) if drifted else html.paragraph(
            'Every statistic is within its threshold.'),
    ]))
    window = verdict['window']
    sections.append(html.Section('Window', [
        html.table([['time range', f"{window['first_time']} to {window['last_time']}"],
                    ['images checked', verdict['images']],
                    ['model version', verdict['version'] or 'any'],
                    ['image bytes in the log', verdict['image_bytes_logged']],
                    *[[name, count] for name, count in window['counts'].items()],
                    ['images whose logged bytes Pillow could not read',
                     verdict['unreadable_images']]],
                   ['window', '']),
        html.paragraph(verdict['checked_text'], 'muted'),
    ]))
    if drifted:
        parts: List[Any] = []
        for finding in drifted:
            parts.append(html.heading(f"{finding['statistic']}: {finding['measure']}"))
            parts.append(_thumbnails(finding, encoded))
        sections.append(html.Section('Images that moved each drifted statistic', parts,
                                     anchor='images'))
    sections.append(html.Section('Statistics', [
        html.table([[f['statistic'], html.status(not f['drifted'], 'ok', 'DRIFT'),
                     f['measure'], f['measured'], f['reference'], f['test'], f['value'],
                     f['threshold'], f['p_value'], f"{f['window_images']} / "
                     f"{f['reference_images']}"] for f in verdict['findings']],
                   ['statistic', '', 'what', 'window', 'reference', 'test', 'test value',
                    'threshold', 'p-value', 'images (window / reference)']),
        *([html.paragraph('Not checked: ' + '; '.join(
            f'{name} ({why})' for name, why in verdict['skipped'].items()), 'muted')]
          if verdict['skipped'] else []),
        html.paragraph(verdict['calibration_text']),
    ]))
    sections.append(html.Section('Files', [html.table(
        [['reference profile', verdict['reference']], ['model', verdict['model_dir']],
         ['request log', verdict['request_log']]])]))
    return html.page(f"Monitoring: {'DRIFT' if verdict['drifted'] else 'no drift'}", sections,
                     subtitle=verdict['verdict'])
