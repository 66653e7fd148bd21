"""Installs the pipeline's packages, so the dotted paths in pipeline/configs.py
(models.preprocessing.preprocessing_fn, models.model.run_fn) resolve in Beam
workers, TFX executors and the Kubeflow image alike."""

import setuptools

setuptools.setup(
    name='tfx-image-classification',
    version='0.1.0',
    description='TFX pipeline: image folders -> validated, evaluated, served classifier',
    packages=setuptools.find_packages(include=[
        'pipeline', 'pipeline.*', 'components', 'components.*', 'models', 'models.*',
        'serving', 'serving.*', 'reports', 'reports.*', 'runlog', 'runlog.*', 'pages',
        'pages.*', 'serving_formats', 'serving_formats.*', 'monitoring', 'monitoring.*']),
    py_modules=['local_runner', 'kubeflow_v2_runner'],
    package_data={'': ['*.pbtxt']},
    python_requires='>=3.9',
    entry_points={'console_scripts': [
        'image-pipeline=local_runner:main',
        'image-serving=serving.server:main',
        'image-client=serving.client:main',
        'image-report=reports.run_report:main',
    ]},
)
