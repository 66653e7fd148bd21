"""HTML of the data-validation report; opens offline (pictures inline, no scripts).

TFDV's own Facets view needs the internet at view time, so feature statistics
are tabulated here from the same statistics proto; schema and anomalies use
TFDV's dataframes.
"""

from typing import Any, Dict, List, Mapping, Sequence, Tuple

from tensorflow_data_validation.utils import display_util
from tensorflow_metadata.proto.v0 import anomalies_pb2
from tensorflow_metadata.proto.v0 import statistics_pb2

from components.data_report import quality
from models import features
from pages import html
from pages import plots

_LIST_LIMIT = 200


def _fmt(value: float) -> str:
    return f'{value:,.4g}' if isinstance(value, float) else f'{value:,}'


def feature_rows(stats: statistics_pb2.DatasetFeatureStatistics) -> List[List[Any]]:
    """One row per feature: name, type, count, missing, then numbers or top values."""
    rows = []
    for feature in sorted(stats.features, key=lambda f: f.name or '/'.join(f.path.step)):
        name = feature.name or '/'.join(feature.path.step)
        kind = statistics_pb2.FeatureNameStatistics.Type.Name(feature.type)
        if feature.HasField('num_stats'):
            num = feature.num_stats
            common = num.common_stats
            summary = (f'mean {_fmt(num.mean)}, std {_fmt(num.std_dev)}, min {_fmt(num.min)}, '
                       f'median {_fmt(num.median)}, max {_fmt(num.max)}, '
                       f'zeros {_fmt(num.num_zeros)}')
        elif feature.HasField('bytes_stats'):       # the encoded images (image_domain)
            size = feature.bytes_stats
            common = size.common_stats
            summary = (f'encoded size: avg {_fmt(size.avg_num_bytes)} bytes, '
                       f'min {_fmt(size.min_num_bytes)}, max {_fmt(size.max_num_bytes)}')
        else:
            string = feature.string_stats
            common = string.common_stats
            top = ', '.join(f'{v.value} ({int(v.frequency)})' for v in string.top_values[:5])
            summary = (f'unique {_fmt(string.unique)}, avg length {_fmt(string.avg_length)}'
                       + (f', top: {top}' if string.unique <= 50 else ''))
        rows.append([name, kind, _fmt(common.num_non_missing), _fmt(common.num_missing),
                     summary])
    return rows


def _histogram(stats: statistics_pb2.DatasetFeatureStatistics,
               key: str) -> List[Tuple[float, float, float]]:
    for feature in stats.features:
        if (feature.name or '/'.join(feature.path.step)) == key:
            for histogram in feature.num_stats.histograms:
                if histogram.type == statistics_pb2.Histogram.STANDARD:
                    return [(b.low_value, b.high_value, b.sample_count)
                            for b in histogram.buckets]
    return []


def _anomalies_table(anomalies: anomalies_pb2.Anomalies) -> Any:
    if not anomalies.anomaly_info and not anomalies.HasField('dataset_anomaly_info'):
        return html.paragraph('No anomalies.', 'ok')
    return html.raw(display_util.get_anomalies_dataframe(anomalies).to_html())


def _file_list(entries: Sequence[Mapping[str, str]], what: str) -> Any:
    if not entries:
        return html.paragraph(f'No {what}.', 'ok')
    rows = [[e['path'], e['reason']] for e in entries[:_LIST_LIMIT]]
    more = (html.paragraph(f'... and {len(entries) - _LIST_LIMIT} more (see image_report.json)')
            if len(entries) > _LIST_LIMIT else '')
    return html.raw(html.table(rows, ['path', 'reason']) + more)


def _links(links: Sequence[Mapping[str, Any]]) -> Any:
    """The symbolic links under the data root: where each leads, what came through it."""
    if not links:
        return ''
    rows = [[link['link'], link['target'], 'yes' if link['outside_root'] else 'no',
             link['files'], link['images']] for link in links[:_LIST_LIMIT]]
    more = (html.paragraph(f'... and {len(links) - _LIST_LIMIT} more (see image_report.json)')
            if len(links) > _LIST_LIMIT else '')
    return html.raw(html.paragraph('Symbolic links (files are the entries through each, '
                                   'images those used):')
                    + html.table(rows, ['link', 'target', 'out of the data root', 'files',
                                        'images']) + more)


def files_sentence(image_report: Mapping[str, Any]) -> str:
    """Every file under the data root, and what became of it."""
    return (f"{image_report['files']} files under the data root = {image_report['images']} "
            f"images used + {len(image_report['bad_files'])} bad + "
            f"{len(image_report['ignored_files'])} ignored.")


def label_rule_sentences(verdict: Mapping[str, Any]) -> List[str]:
    """The label balance and drift rules with this data set's numbers, in words."""
    rules = verdict['label_rules']
    alpha = verdict['settings']['label_false_alarm_rate']
    sentences = []
    for split, rule in rules['balance'].items():
        sentences.append(
            f"Balance, {split} split ({rule['images']} images): each class should have "
            f"{rule['expected_share']:.1%} ± {rule['allowed']:.1%}, the larger of "
            f"balance_tolerance {rule['tolerance']:.0%} of that share ({rule['accepted']:.1%}) "
            "and the "
            f"{rule['chance_margin']:.1%} a balanced set of "
            f"{rule['images']} images shows by chance (label_false_alarm_rate {alpha:g}).")
    if 'drift' in rules:
        drift = rules['drift']
        verdict_word = 'above' if drift['distance'] > drift['threshold'] else 'within'
        sentences.append(
            f"Train vs eval: the largest difference of a class's share is "
            f"{drift['distance']:.1%} (class {drift['class']!r}); with these counts chance "
            f"alone gives up to {drift['threshold']:.1%} (label_false_alarm_rate {alpha:g}), "
            f"so it is {verdict_word} that bound.")
    return sentences


def render(*, verdict: Dict[str, Any], stats: Dict[str, statistics_pb2.DatasetFeatureStatisticsList],
           anomalies: Dict[str, anomalies_pb2.Anomalies], drift: anomalies_pb2.Anomalies,
           schema, image_report: Dict[str, Any], samples: Dict[str, List[Tuple[bytes, str]]],
           sample_split: str, examples_uri: str,
           quality_sections: Sequence[html.Section] = ()) -> str:
    """The report page; quality_sections (DataQuality's suspects) follow the samples."""
    counts = verdict['label_counts']
    splits = list(stats)
    sections = []

    problems = verdict['problems']
    sections.append(html.Section('Verdict', [
        html.paragraph(html.status(verdict['passed'])),
        html.bullet_list(problems) if problems else html.paragraph(
            'Label balance, train/eval label drift, schema anomalies and leakage are '
            'within the settings.'),
        quality.warnings_part(verdict),
        html.table([[k, v] for k, v in sorted(verdict['settings'].items())],
                   ['setting', 'value']),
        html.paragraph(f'Examples: {examples_uri}', 'muted'),
    ]))

    class_names = list(next(iter(counts.values())))
    sections.append(html.Section('Labels', [
        html.counts_table({split: counts[split] for split in splits}, class_names, shares=True),
        html.image(plots.label_counts(counts), 'images per class and split'),
        *[html.paragraph(text) for text in label_rule_sentences(verdict)],
        html.paragraph('Train vs eval label distribution (TFDV drift comparator, '
                       'L-infinity distance):'),
        _anomalies_table(drift),
    ]))

    grid_rows = [(label, [(plots.decode_thumbnail(data), f'{label}: {path.split("/")[-1]}')
                          for data, path in samples[label]]) for label in samples]
    sections.append(html.Section('Sample images', [
        html.paragraph(f'First images of each class in the {sample_split} split.'),
        html.image(plots.image_grid(grid_rows), 'sample images per class'),
    ]))
    sections.extend(quality_sections)

    size_parts = []
    for key in (features.WIDTH_KEY, features.HEIGHT_KEY):
        series = {split: _histogram(stats[split].datasets[0], key) for split in splits}
        size_parts.append(html.image(plots.histograms(series, f'Image {key}', f'{key} (px)'),
                                     f'{key} histogram'))
    sections.append(html.Section('Image sizes', size_parts))

    anomaly_parts = []
    for split in splits:
        anomaly_parts += [html.paragraph(f'{split} split (ExampleValidator):'),
                          _anomalies_table(anomalies[split])]
    sections.append(html.Section('Anomalies', anomaly_parts))

    dup_rows = [[d['sha256'][:16], 'yes' if d['cross_split'] else 'no',
                 'yes' if d['cross_class'] else 'no',
                 '; '.join(f"{f['split']}: {f['path']}" for f in d['files'])]
                for d in image_report['duplicates'][:_LIST_LIMIT]]
    sections.append(html.Section('Files', [
        html.paragraph(files_sentence(image_report)),
        html.table([[reason, n] for reason, n in image_report['ignored_by_reason'].items()],
                   ['ignored because', 'files']) if image_report['ignored_files'] else '',
        html.paragraph(f"{len(image_report['bad_files'])} bad of "
                       f"{image_report['images'] + len(image_report['bad_files'])} image files "
                       f"({image_report['bad_fraction']:.1%}; max "
                       f"{image_report['max_bad_fraction']:.1%}). Split method: "
                       f"{image_report['split_method']}."),
        _file_list(image_report['bad_files'], 'bad files'),
        html.paragraph('Ignored (each with the reason):'),
        _file_list(image_report['ignored_files'], 'ignored files'),
        _links(image_report.get('links', [])),
        html.paragraph(f"Exact duplicates (same bytes): {len(image_report['duplicates'])} "
                       f"groups, {image_report['cross_split_duplicates']} across train and "
                       f"eval (leakage), {image_report['cross_class_duplicates']} filed under "
                       'more than one class (conflicting labels).'),
        html.table(dup_rows, ['sha256', 'across splits', 'across classes', 'files']) if dup_rows else html.paragraph(
            'No duplicates.', 'ok'),
    ]))

    stat_parts = []
    for split in splits:
        dataset = stats[split].datasets[0]
        stat_parts += [html.paragraph(f'{split} split: {dataset.num_examples} examples'),
                       html.table(feature_rows(dataset),
                                  ['feature', 'type', 'count', 'missing', 'summary'])]
    sections.append(html.Section('Feature statistics', stat_parts))

    schema_features, schema_domains = display_util.get_schema_dataframe(schema)
    sections.append(html.Section('Schema', [html.raw(schema_features.to_html()),
                                            html.raw(schema_domains.to_html())]))
    return html.page('Data validation report', sections,
                     subtitle=f"{'PASSED' if verdict['passed'] else 'FAILED'}: "
                              f"{sum(sum(c.values()) for c in counts.values())} images, "
                              f"splits {', '.join(splits)}")
