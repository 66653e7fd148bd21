"""Our TFX components (a spec + executor class, or one @component function: README, Layout)
and their artifact types.

The artifact types are attributes of this package, `components.DataValidationReport`
(their TYPE_NAME: the Kubeflow V2 launcher imports them by it), loaded on first use, so
that a stage's settings (components/<stage>/settings.py) import without TFX: the runners
derive their flags from them before anything loads TensorFlow (pipeline/cli.py).
"""

ARTIFACT_TYPES = ('DataValidationReport', 'PushedModelBlessing', 'ReferenceProfile',
                  'DataQualityReport', 'FrozenFeatures', 'TFLiteModel')


def __getattr__(name: str):
    if name in ARTIFACT_TYPES:
        from components import artifacts  # pylint: disable=import-outside-toplevel
        return getattr(artifacts, name)
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
