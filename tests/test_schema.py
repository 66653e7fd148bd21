"""The curated schema agrees with models/features.py."""

import tensorflow_data_validation as tfdv
from tensorflow_transform.tf_metadata import schema_utils

from models import features
from pipeline import configs


def test_schema_holds_every_raw_feature_and_the_label_domain():
    schema = tfdv.load_schema_text(configs.CURATED_SCHEMA)
    assert {f.name for f in schema.feature} == set(features.RAW_FEATURE_KEYS)
    label_names = tfdv.get_domain(schema, features.LABEL_NAME_KEY)
    assert tuple(label_names.value) == features.LABELS
    label = tfdv.get_feature(schema, features.LABEL_KEY)
    assert (label.int_domain.min, label.int_domain.max) == (0, len(features.LABELS) - 1)
    spec = schema_utils.schema_as_feature_spec(schema).feature_spec
    assert spec[features.IMAGE_KEY].shape == []
    serving = [f.name for f in schema.feature if 'SERVING' not in f.not_in_environment]
    assert serving == [features.IMAGE_KEY]
