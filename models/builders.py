"""Keras model builders, one per model of the tutorial. Pure: knobs in, model out.

tf_keras (Keras 2.16) throughout: TFT 1.16's Keras layer and TFMA 0.47 build on
it, so the whole chain shares one Keras. Every model takes the Transform output
(float images in [-1, 1]) and returns logits.
"""

from typing import Dict, Optional, Sequence, Tuple

import tf_keras as keras

from models import features

INPUT_NAME = features.transformed_name(features.IMAGE_KEY)
BASE_MODEL_NAME = 'mobilenetv2_base'
AUGMENTATION_LAYER = 'augmentation'
POOL_LAYER = 'pool'      # the frozen base's pooled features (transfer model)
HEAD_DROPOUT_LAYER = 'head_dropout'  # between the pooled features and the output (transfer model)
HEAD_LAYER = 'logits'    # the Dense output layer of every model
# Channels of MobileNetV2's last feature map (alpha 1.0, any input size): the length
# of the transfer model's pooled features.
POOLED_FEATURES = 1280


def augmentation(seed: Optional[int] = None, strength: str = 'tutorial') -> keras.Sequential:
    """Random flips, rotations, zoom and contrast by strength; active only when training.

    none: nothing; light: flip + rotation 0.1; tutorial: flip + rotation 0.2;
    strong: the tutorial's plus zoom 0.2 and contrast 0.2.
    """
    if strength not in features.AUGMENTATIONS:
        raise ValueError(f'augmentation must be one of {features.AUGMENTATIONS}, got '
                         f'{strength!r}')
    layers = []
    if strength != 'none':
        layers += [keras.layers.RandomFlip('horizontal', seed=seed),
                   keras.layers.RandomRotation(0.1 if strength == 'light' else 0.2, seed=seed)]
    if strength == 'strong':
        layers += [keras.layers.RandomZoom(0.2, seed=seed),
                   keras.layers.RandomContrast(0.2, seed=seed)]
    return keras.Sequential(layers, name=AUGMENTATION_LAYER)


class SmoothedSparseCrossentropy(keras.losses.Loss):
    """Cross-entropy from logits on integer labels, with label smoothing.

    tf_keras' SparseCategoricalCrossentropy has no label_smoothing; this one
    one-hot encodes the labels and uses CategoricalCrossentropy's.
    """

    def __init__(self, label_smoothing: float, name: str = 'smoothed_crossentropy'):
        super().__init__(name=name)
        self.label_smoothing = label_smoothing
        self._loss = keras.losses.CategoricalCrossentropy(
            from_logits=True, label_smoothing=label_smoothing,
            reduction=keras.losses.Reduction.NONE)

    def call(self, y_true, y_pred):
        import tensorflow as tf  # pylint: disable=import-outside-toplevel
        labels = tf.cast(tf.reshape(y_true, [-1]), tf.int32)
        return self._loss(tf.one_hot(labels, tf.shape(y_pred)[-1]), y_pred)

    def get_config(self):
        return {'label_smoothing': self.label_smoothing, 'name': self.name}


def compile_model(model: keras.Model, learning_rate: float,
                  label_smoothing: float = 0.0) -> keras.Model:
    """Adam, categorical cross-entropy from logits (label smoothing optional), accuracy."""
    loss = (SmoothedSparseCrossentropy(label_smoothing) if label_smoothing else
            keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=learning_rate), loss=loss,
                  metrics=['accuracy'])
    return model


def _input(image_size: Sequence[int]) -> keras.Input:
    return keras.Input(shape=(*image_size, 3), name=INPUT_NAME)


def build_transfer_model(image_size: Sequence[int], num_classes: int, *, weights: Optional[str],
                         dropout: float = 0.2, learning_rate: float = 1e-3,
                         seed: Optional[int] = None, augment: str = 'tutorial',
                         label_smoothing: float = 0.0) -> keras.Model:
    """Model 4: augmentation -> frozen MobileNetV2 -> GlobalMaxPooling2D -> Dropout -> Dense.

    Args:
      image_size: (height, width).
      num_classes: outputs (logits).
      weights: 'imagenet', a path to a weights file, or None (random).
      dropout: dropout rate before the head.
      learning_rate: Adam's learning rate.
      seed: seed of the augmentation layers.
      augment: augmentation strength (features.AUGMENTATIONS).
      label_smoothing: label smoothing of the loss (0: none).

    Returns:
      The compiled model; its base is the layer named BASE_MODEL_NAME.
    """
    base = keras.applications.MobileNetV2(input_shape=(*image_size, 3), include_top=False,
                                          weights=weights)
    base._name = BASE_MODEL_NAME  # pylint: disable=protected-access
    base.trainable = False
    inputs = _input(image_size)
    x = augmentation(seed, augment)(inputs) if augment != 'none' else inputs
    # training=False keeps BatchNorm in inference mode, also when fine-tuning.
    x = base(x, training=False)
    x = keras.layers.GlobalMaxPooling2D(name=POOL_LAYER)(x)
    outputs = _head_layers(x, num_classes, dropout)
    return compile_model(keras.Model(inputs, outputs, name='transfer'), learning_rate,
                         label_smoothing)


def _head_layers(pooled, num_classes: int, dropout: float):
    """The transfer model's head on its pooled features: Dropout, then the Dense logits."""
    x = keras.layers.Dropout(dropout, name=HEAD_DROPOUT_LAYER)(pooled)
    return keras.layers.Dense(num_classes, name=HEAD_LAYER)(x)


def build_head(num_classes: int, *, dropout: float, learning_rate: float,
               label_smoothing: float = 0.0) -> keras.Model:
    """A compiled head alone, as the transfer model has it (pooled features -> logits),
    without building the base: what the Tuner trains per trial."""
    pooled = keras.Input(shape=(POOLED_FEATURES,))
    return compile_model(keras.Model(pooled, _head_layers(pooled, num_classes, dropout),
                                     name='head'), learning_rate, label_smoothing)


def pooled_features(model: keras.Model) -> keras.Model:
    """The transfer model's input -> its frozen base's pooled features of the image
    augmented as in training (a new draw every call); without augmentation layers,
    of the image itself."""
    images = model.inputs[0]
    x = images
    if AUGMENTATION_LAYER in {layer.name for layer in model.layers}:
        x = model.get_layer(AUGMENTATION_LAYER)(images, training=True)
    pooled = model.get_layer(POOL_LAYER)(model.get_layer(BASE_MODEL_NAME)(x, training=False))
    return keras.Model(images, pooled, name='pooled_features')


def head(model: keras.Model, learning_rate: float, label_smoothing: float = 0.0) -> keras.Model:
    """The transfer model's layers after the pooled features (dropout, output), as a
    compiled model of their own: training it trains the transfer model's head."""
    pooled = keras.Input(shape=model.get_layer(POOL_LAYER).output.shape[1:])
    outputs = model.get_layer(HEAD_LAYER)(model.get_layer(HEAD_DROPOUT_LAYER)(pooled))
    return compile_model(keras.Model(pooled, outputs, name='head'), learning_rate,
                         label_smoothing)


def unfreeze_from(model: keras.Model, first_layer: int, learning_rate: float,
                  label_smoothing: float = 0.0) -> keras.Model:
    """Fine-tuning: the base's layers from index first_layer on become trainable (the
    layers below keep their weights); recompiles with learning_rate.

    BatchNorm layers stay in inference mode: the model calls its base with
    training=False, so their moving statistics never move (their scale and offset
    train with the rest of the top).

    Raises:
      ValueError: first_layer is not an index of the base's layers.
    """
    base = model.get_layer(BASE_MODEL_NAME)
    if not 0 <= first_layer < len(base.layers):
        raise ValueError(f'fine_tune_from_layer must be in [0, {len(base.layers) - 1}] '
                         f'(the base has {len(base.layers)} layers), got {first_layer}')
    base.trainable = True
    for layer in base.layers[:first_layer]:
        layer.trainable = False
    return compile_model(model, learning_rate, label_smoothing)


def _cnn_layers(x, dropout: float):
    """The tutorial's convolutional stack and dense classifier (models 1-3)."""
    for filters in (64, 32, 32, 32):
        x = keras.layers.Conv2D(filters, (3, 3), activation='relu')(x)
        x = keras.layers.BatchNormalization()(x)
        x = keras.layers.MaxPooling2D((2, 2))(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(128, activation='relu')(x)
    x = keras.layers.Dropout(dropout)(x)
    x = keras.layers.Dense(256, activation='relu')(x)
    x = keras.layers.Dropout(dropout)(x)
    x = keras.layers.Dense(256, activation='relu')(x)
    x = keras.layers.Dropout(dropout)(x)
    return keras.layers.Dense(128, activation='relu')(x)


def build_cnn_model(image_size: Sequence[int], num_classes: int, *, augment: bool,
                    preprocessed: bool, dropout: float = 0.2, learning_rate: float = 1e-3,
                    seed: Optional[int] = None, name: str = 'cnn') -> keras.Model:
    """Models 1-3: the CNN from scratch, with augmentation and/or preprocessing.

    Args:
      image_size: (height, width).
      num_classes: outputs (logits).
      augment: add the augmentation layers (models 2 and 3).
      preprocessed: feed [-1, 1] pixels (model 3); otherwise the Transform
        output is mapped back to [0, 255], the raw pixels models 1 and 2 see.
      dropout: dropout rate between dense layers.
      learning_rate: Adam's learning rate.
      seed: seed of the augmentation layers.
      name: the model's name.

    Returns:
      The compiled model.
    """
    inputs = _input(image_size)
    x = inputs if preprocessed else keras.layers.Rescaling(127.5, offset=127.5)(inputs)
    if augment:
        x = augmentation(seed)(x)
    outputs = keras.layers.Dense(num_classes, name=HEAD_LAYER)(_cnn_layers(x, dropout))
    return compile_model(keras.Model(inputs, outputs, name=name), learning_rate)


def build(variant: str, image_size: Sequence[int], num_classes: int, *, weights: Optional[str],
          dropout: float, learning_rate: float, seed: Optional[int] = None,
          augment: str = 'tutorial', label_smoothing: float = 0.0) -> keras.Model:
    """The model of a PipelineConfig.model_variant (augment and label_smoothing: transfer)."""
    cnn: Dict[str, Tuple[bool, bool]] = {
        'cnn': (False, False), 'cnn_augment': (True, False),
        'cnn_preprocess_augment': (True, True)}
    if variant == 'transfer':
        return build_transfer_model(image_size, num_classes, weights=weights, dropout=dropout,
                                    learning_rate=learning_rate, seed=seed, augment=augment,
                                    label_smoothing=label_smoothing)
    if variant in cnn:
        augment, preprocessed = cnn[variant]
        return build_cnn_model(image_size, num_classes, augment=augment,
                               preprocessed=preprocessed, dropout=dropout,
                               learning_rate=learning_rate, seed=seed, name=variant)
    raise ValueError(f'unknown model variant {variant!r}; expected transfer or one of {sorted(cnn)}')
