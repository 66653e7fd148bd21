"""ImageSchemaGen: the curated schema for this run's classes, as a Schema artifact.

Like TFX's ImportSchemaGen (which copies a schema file), plus the label domain
of the classes found; see schema.py for why not SchemaGen.
"""

import json
import os

import tensorflow_data_validation as tfdv
from tfx.dsl.component.experimental.annotations import OutputArtifact
from tfx.dsl.component.experimental.annotations import Parameter
from tfx.dsl.component.experimental.decorators import component
from tfx.types import standard_artifacts

from components.image_schema_gen import schema as class_schema


@component
def ImageSchemaGen(  # pylint: disable=invalid-name
        schema: OutputArtifact[standard_artifacts.Schema],
        schema_file: Parameter[str], class_names: Parameter[str]) -> None:
    """Writes `schema_file` with the label domain of `class_names` (a JSON list of class names)."""
    curated = class_schema.for_classes(tfdv.load_schema_text(schema_file), json.loads(class_names))
    tfdv.write_schema_text(curated, os.path.join(schema.uri, class_schema.SCHEMA_FILE))
