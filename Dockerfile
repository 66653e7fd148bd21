# The pipeline image: every component of the compiled Kubeflow Pipelines v2 / Vertex AI
# spec runs in it, and Dataflow runs it as the Beam worker image (--sdk_container_image).
#
#   docker build -t REGION-docker.pkg.dev/PROJECT/REPO/image-classification:TAG .
#
# It cannot be built on our development machines (no Docker engine); see docs/kubeflow.md.
FROM tensorflow/tfx:1.16.0

# The base image has the TFX 1.16 stack (TF 2.16, Beam, TFDV, TFT, TFMA, tf_keras,
# tensorflow-serving-api) and keeps Beam's SDK boot as its ENTRYPOINT, which Dataflow
# needs; the compiled spec names its own command, so we leave the ENTRYPOINT alone.
# Our reports need matplotlib and the ExampleGen needs Pillow (versions: requirements.lock).
RUN python -m pip install --no-cache-dir "matplotlib==3.9.4" "pillow==12.3.0"

# configs.IMAGE_PROJECT_DIR: the compiled spec names /pipeline/schema/schema.pbtxt.
WORKDIR /pipeline
COPY . /pipeline

# Editable, so configs.CURATED_SCHEMA (next to the sources) is the copy above; the dotted
# paths (models.preprocessing.preprocessing_fn, models.model.run_fn, our executors) resolve
# in every component container and Dataflow worker. --no-deps: the base image has them.
RUN python -m pip install --no-cache-dir --no-deps -e /pipeline \
 && python -c "import os; from pipeline import configs; \
assert configs.CURATED_SCHEMA == configs.IMAGE_CURATED_SCHEMA, configs.CURATED_SCHEMA; \
assert os.path.isfile(configs.IMAGE_CURATED_SCHEMA), configs.IMAGE_CURATED_SCHEMA" \
 && python -c "import components.image_example_gen.executor, components.data_report.executor, \
components.data_gate.component, components.image_pusher.executor, models.model, \
models.preprocessing, serving.warmup"
