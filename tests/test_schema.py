"""The curated schema template agrees with models/features.py; ImageSchemaGen fills its
class names."""

import json

import pytest
import tensorflow_data_validation as tfdv
from tensorflow_transform.tf_metadata import schema_utils
from tfx.types import standard_artifacts

from components.image_schema_gen import component
from components.image_schema_gen import schema as class_schema
from models import features
from pipeline import configs


def test_template_holds_every_raw_feature_with_scalar_shapes():
    schema = tfdv.load_schema_text(configs.CURATED_SCHEMA)
    assert {f.name for f in schema.feature} == set(features.RAW_FEATURE_KEYS)
    spec = schema_utils.schema_as_feature_spec(schema).feature_spec
    assert all(spec[key].shape == [] for key in features.RAW_FEATURE_KEYS)
    serving = [f.name for f in schema.feature if 'SERVING' not in f.not_in_environment]
    assert serving == [features.IMAGE_KEY]


@pytest.mark.parametrize('class_names', [('cats', 'dogs'), ('Golden Retriever', 'cat', 'Été'),
                                    tuple(f'class {i:02d}' for i in range(12))])
def test_for_classes_sets_both_label_domains(class_names):
    template = tfdv.load_schema_text(configs.CURATED_SCHEMA)
    schema = class_schema.for_classes(template, class_names)
    assert tuple(tfdv.get_domain(schema, features.LABEL_NAME_KEY).value) == class_names
    label = tfdv.get_feature(schema, features.LABEL_KEY)
    assert (label.int_domain.min, label.int_domain.max) == (0, len(class_names) - 1)
    # Only the label domains change; the template itself is left as it was.
    template_again = tfdv.load_schema_text(configs.CURATED_SCHEMA)
    assert template == template_again
    for name in features.RAW_FEATURE_KEYS:
        if name not in (features.LABEL_KEY, features.LABEL_NAME_KEY):
            assert tfdv.get_feature(schema, name) == tfdv.get_feature(template, name)


def test_for_classes_rejects_bad_labels_and_templates():
    template = tfdv.load_schema_text(configs.CURATED_SCHEMA)
    with pytest.raises(ValueError, match='at least two distinct'):
        class_schema.for_classes(template, ['a', 'a'])
    del template.feature[:]
    with pytest.raises(ValueError, match='no feature'):
        class_schema.for_classes(template, ['a', 'b'])


def test_component_writes_the_schema_artifact(tmp_path):
    artifact = standard_artifacts.Schema()
    artifact.uri = str(tmp_path)
    class_names = ['ant', 'bee', 'fly']
    executor = component.ImageSchemaGen.EXECUTOR_SPEC.executor_class()
    executor.Do({}, {'schema': [artifact]},
                {'schema_file': configs.CURATED_SCHEMA, 'class_names': json.dumps(class_names)})
    written = tfdv.load_schema_text(str(tmp_path / class_schema.SCHEMA_FILE))
    assert list(tfdv.get_domain(written, features.LABEL_NAME_KEY).value) == class_names
