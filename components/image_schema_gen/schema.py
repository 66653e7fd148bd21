"""Pure: the curated schema template, with the label domain of the classes found.

`schema/schema.pbtxt` states every raw feature ImageExampleGen writes, with
shapes, presence and domains. Only the classes differ between data sets, so
the label domains (`label` 0..K-1, `label_name` the class names) are written
here for each run's classes. Inferring a schema instead (SchemaGen) would
give the image a shape [1] that the Transform graph and the served model then
expect, and domains learned from one split.
"""

from typing import Sequence

import tensorflow_data_validation as tfdv
from tensorflow_metadata.proto.v0 import schema_pb2

from models import features

# The file name TFX's schema readers expect inside a Schema artifact.
SCHEMA_FILE = 'schema.pbtxt'


def for_classes(template: schema_pb2.Schema, class_names: Sequence[str]) -> schema_pb2.Schema:
    """A copy of the template whose label domains are exactly these classes.

    Args:
      template: the curated schema.
      class_names: class names; the index is the label.

    Returns:
      The schema for this data set.

    Raises:
      ValueError: fewer than two distinct class names, or a template without the
        label features and the label-name string domain.
    """
    class_names = features.class_names(class_names)
    schema = schema_pb2.Schema()
    schema.CopyFrom(template)
    names = {f.name for f in schema.feature}
    missing = {features.LABEL_KEY, features.LABEL_NAME_KEY} - names
    if missing:
        raise ValueError(f'the schema template has no feature {sorted(missing)}')
    label = tfdv.get_feature(schema, features.LABEL_KEY)
    label.int_domain.min = 0
    label.int_domain.max = len(class_names) - 1
    label.int_domain.is_categorical = True
    label_name = tfdv.get_feature(schema, features.LABEL_NAME_KEY)
    if not label_name.domain:
        raise ValueError(f'the schema template gives {features.LABEL_NAME_KEY!r} no string '
                         'domain to fill with the class names')
    domain = tfdv.get_domain(schema, features.LABEL_NAME_KEY)
    del domain.value[:]
    domain.value.extend(class_names)
    return schema
