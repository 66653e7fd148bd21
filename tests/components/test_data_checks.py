"""DataReport's label checks allow for sample size: balanced random splits pass, imbalance stops."""

import collections
import hashlib
import random

import pytest
import tensorflow_data_validation as tfdv
from tensorflow_metadata.proto.v0 import statistics_pb2

from components.data_report import checks
from components.image_example_gen import split
from components.image_example_gen import summary
from components.image_schema_gen import schema as class_schema
from models import features
from pipeline import configs

ALPHA = configs.PipelineConfig.data_checks.label_false_alarm_rate
TOLERANCE = configs.PipelineConfig.data_checks.balance_tolerance
NAMES = (features.TRAIN_SPLIT, features.EVAL_SPLIT)


def label_stats(counts):
    """Statistics of the label-name feature as StatisticsGen writes them (one value per image)."""
    stats = statistics_pb2.DatasetFeatureStatisticsList()
    dataset = stats.datasets.add(num_examples=sum(counts.values()))
    feature = dataset.features.add(type=statistics_pb2.FeatureNameStatistics.STRING)
    feature.path.step.append(features.LABEL_NAME_KEY)
    common = feature.string_stats.common_stats
    common.num_non_missing = dataset.num_examples
    common.min_num_values = common.max_num_values = 1
    common.avg_num_values = 1.0
    common.tot_num_values = dataset.num_examples
    feature.string_stats.unique = sum(1 for v in counts.values() if v)
    ranked = sorted(((v, k) for k, v in counts.items() if v), reverse=True)
    for rank, (count, label) in enumerate(ranked):
        feature.string_stats.top_values.add(value=label, frequency=count)
        feature.string_stats.rank_histogram.buckets.add(
            low_rank=rank, high_rank=rank, label=label, sample_count=count)
    return stats


def schema_for(labels):
    return class_schema.for_classes(tfdv.load_schema_text(configs.CURATED_SCHEMA), labels)


def problems(train, evaluation, alpha=ALPHA):
    """Every label problem the DataReport raises for these counts (TFDV's comparator included)."""
    labels = list(train)
    threshold = checks.label_drift_threshold(train, evaluation, alpha)
    drift = checks.label_drift(label_stats(train), label_stats(evaluation), schema_for(labels),
                               threshold)
    return (checks.balance_problems({'train': train, 'eval': evaluation}, TOLERANCE, alpha)
            + checks.drift_problems(drift, train, evaluation, threshold, alpha))


def fake_hash(rng):
    return hashlib.sha256(rng.getrandbits(64).to_bytes(8, 'little')).hexdigest()


def hash_split_counts(per_class, rng, eval_fraction=0.2):
    images = [(fake_hash(rng), label) for label, n in enumerate(per_class) for _ in range(n)]
    assigned = split.assign(images, eval_fraction, NAMES)
    counts = {name: {f'class {c}': 0 for c in range(len(per_class))} for name in NAMES}
    for sha, label in images:
        counts[assigned[sha]][f'class {label}'] += 1
    return counts


def random_split_counts(per_class, rng, eval_fraction=0.2):
    """A split made without stratification (a user's own train/ and validation/)."""
    counts = {name: {f'class {c}': 0 for c in range(len(per_class))} for name in NAMES}
    for label, n in enumerate(per_class):
        for _ in range(n):
            counts[NAMES[rng.random() < eval_fraction]][f'class {label}'] += 1
    return counts


@pytest.mark.parametrize('classes,per_class', [(2, 20), (2, 100), (2, 400), (3, 50), (3, 117),
                                               (5, 30), (10, 40), (4, 1000)])
def test_balanced_hash_split_always_passes(classes, per_class):
    rng = random.Random(classes * 1000 + per_class)
    for _ in range(20):
        counts = hash_split_counts([per_class] * classes, rng)
        assert problems(counts['train'], counts['eval']) == [], counts


def test_balanced_random_split_passes_at_about_the_false_alarm_rate():
    rng = random.Random(7)
    trials, stopped = 400, 0
    for trial in range(trials):
        classes = 2 + trial % 4
        counts = random_split_counts([rng.randint(20, 300)] * classes, rng)
        stopped += bool(problems(counts['train'], counts['eval']))
    # Expected about 2 x 0.001 x 400 (two checks); 4 would be very unlikely (p < 0.01).
    assert stopped <= 4, stopped


def test_the_issue_example_is_not_stopped():
    # A balanced 3-class set whose eval split came out 28.6% / 42.9% / 28.6%: chance at 70 images.
    train = {'a': 100, 'b': 90, 'c': 100}
    evaluation = {'a': 20, 'b': 30, 'c': 20}
    assert problems(train, evaluation) == []


@pytest.mark.parametrize('total', [300, 1000, 5000])
def test_a_70_30_data_set_is_stopped(total):
    rng = random.Random(total)
    counts = hash_split_counts([total * 7 // 10, total * 3 // 10], rng)
    found = problems(counts['train'], counts['eval'])
    assert any(p.startswith("label balance: class 'class 0' is 70.0% of the train split")
               for p in found), found


@pytest.mark.parametrize('classes', [10, 30])
def test_one_small_class_among_many_is_stopped(classes):
    # K-1 classes of 100 photos and one of 20: 2.2% against 10.9% at K=10. An absolute
    # tolerance around 1/K let it through; relative to 1/K it is stopped, at any K.
    rng = random.Random(classes)
    counts = hash_split_counts([100] * (classes - 1) + [20], rng)
    found = problems(counts['train'], counts['eval'])
    small = f"label balance: class 'class {classes - 1}' is"
    assert any(p.startswith(small) and 'of the train split' in p for p in found), found
    # Every class of the same size: nothing, however many classes.
    assert problems(*hash_split_counts([100] * classes, rng).values()) == []


def test_a_shifted_eval_split_is_stopped_with_the_rule_in_words():
    train = {'cats': 400, 'dogs': 400}
    evaluation = {'cats': 70, 'dogs': 130}
    found = problems(train, evaluation)
    threshold = checks.label_drift_threshold(train, evaluation, ALPHA)
    assert 0.1 < threshold < 0.15
    drift = [p for p in found if p.startswith('train vs eval')]
    assert drift == [
        "train vs eval label shares: class 'cats' is 35.0% of eval (70 of 200) against 50.0% "
        f"of train (400 of 800); with these counts a difference up to {threshold:.1%} is "
        f"expected by chance (label_false_alarm_rate {ALPHA:g}; TFDV L-infinity comparator on "
        "'label_name')"]


def test_margins_shrink_with_more_images_and_grow_with_confidence():
    assert checks.balance_margin(100, 2, ALPHA) > checks.balance_margin(10_000, 2, ALPHA)
    assert checks.balance_margin(100, 2, 0.01) < checks.balance_margin(100, 2, 0.0001)
    small = checks.label_drift_threshold({'a': 40, 'b': 40}, {'a': 10, 'b': 10}, ALPHA)
    large = checks.label_drift_threshold({'a': 4000, 'b': 4000}, {'a': 1000, 'b': 1000}, ALPHA)
    assert large < 0.05 < small
    with pytest.raises(ValueError, match='false_alarm_rate'):
        checks.z_bound(0.0, 2)


def test_report_streams_entries_and_takes_duplicate_groups_from_the_hash_grouping():
    ok = [{'path': f'{label}/{i}.jpg', 'status': summary.OK, 'split': split, 'label_name': label,
           'sha256': 'same' if i == 0 else f'{label}{i}'}
          for label, split in (('cats', 'train'), ('dogs', 'eval')) for i in range(3)]
    others = [{'path': 'z.txt', 'status': summary.IGNORED, 'reason': 'not an image'},
              {'path': 'cats/b.jpg', 'status': summary.BAD, 'reason': 'truncated'},
              {'path': 'a.txt', 'status': summary.IGNORED, 'reason': 'not an image'}]
    copies = collections.defaultdict(list)
    for entry in ok:
        copies[entry['sha256']].append(summary.copy_of(entry))
    groups = [g for sha, files in copies.items() if (g := summary.duplicate_group(sha, files))]
    assert len(groups) == 1 and groups[0]['cross_split'] and groups[0]['cross_class']
    assert summary.duplicate_group('x', copies['cats1']) is None
    report = summary.summarize((e for e in ok + others), iter(groups), ['cats', 'dogs'],
                               ['train', 'eval'], max_bad_fraction=0.5, hash_split=False)
    assert report['files'] == 9 and report['images'] == 6
    assert [f['path'] for f in report['ignored_files']] == ['a.txt', 'z.txt']
    assert report['duplicates'] == groups and report['cross_split_duplicates'] == 1
    assert report['splits']['eval']['by_label'] == {'cats': 0, 'dogs': 3}
