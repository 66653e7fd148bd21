"""The peer: the tutorial notebook's transfer model as a plain Keras script.

    python bench/notebook_peer.py --data-root DIR --epochs N [--json OUT]

What the notebook does: image_dataset_from_directory (batch 32, 160x160,
shuffled; --image-size, default the pipeline's 224), prefetch, MobileNetV2 preprocessing, flip + rotation augmentation,
the frozen base, GlobalMaxPooling2D, Dropout 0.2, Dense(2), Adam, fit with the
validation set, then accuracy on the validation photos. tf_keras (Keras 2, the
Keras the tutorial was written for and the pipeline uses). Weights from the file
in ../shared/keras/models (offline).
"""

import argparse
import json
import os
import sys
import time

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

BATCH_SIZE = 32


def main() -> int:
    from pipeline import configs  # pylint: disable=import-outside-toplevel
    from bench import photos  # pylint: disable=import-outside-toplevel
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--data-root', required=True, help='with train/ and validation/')
    parser.add_argument('--epochs', type=int, default=10)
    parser.add_argument('--image-size', type=int, default=photos.pipeline_image_size(),
                        help='square input size')
    parser.add_argument('--weights', default=configs.SHARED_WEIGHTS)
    parser.add_argument('--json', help='write the results here')
    args = parser.parse_args()
    start = time.perf_counter()
    img_size = (args.image_size, args.image_size)

    from runlog import noise  # pylint: disable=import-outside-toplevel
    noise.quiet_tensorflow()
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    import tf_keras as keras  # pylint: disable=import-outside-toplevel
    from tf_keras import layers  # pylint: disable=import-outside-toplevel

    train_dataset = keras.utils.image_dataset_from_directory(
        os.path.join(args.data_root, 'train'), shuffle=True, batch_size=BATCH_SIZE,
        image_size=img_size)
    validation_dataset = keras.utils.image_dataset_from_directory(
        os.path.join(args.data_root, 'validation'), shuffle=True, batch_size=BATCH_SIZE,
        image_size=img_size)
    train_dataset = train_dataset.prefetch(buffer_size=tf.data.AUTOTUNE)
    validation_dataset = validation_dataset.prefetch(buffer_size=tf.data.AUTOTUNE)

    i = keras.Input(shape=img_size + (3,))
    x = keras.applications.mobilenet_v2.preprocess_input(i)
    preprocessor = keras.Model(inputs=[i], outputs=[x])
    data_augmentation = keras.Sequential([layers.RandomFlip('horizontal'),
                                          layers.RandomRotation(0.2)])
    base_model = keras.applications.MobileNetV2(input_shape=img_size + (3,), include_top=False,
                                                weights=args.weights)
    base_model.trainable = False
    i = keras.Input(shape=img_size + (3,))
    x = base_model(i, training=False)
    base_model_layer = keras.Model(inputs=[i], outputs=[x])

    i = keras.Input(shape=img_size + (3,))
    x = preprocessor(i)
    x = data_augmentation(x)
    x = base_model_layer(x)
    x = layers.GlobalMaxPooling2D()(x)
    x = layers.Dropout(0.2)(x)
    output = layers.Dense(2)(x)
    model4 = keras.Model(inputs=i, outputs=output)
    model4.compile(optimizer='adam',
                   loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                   metrics=['accuracy'])

    fit_start = time.perf_counter()
    # Only watches: the notebook's own fit, with the time of each epoch noted.
    from models import callbacks  # pylint: disable=import-outside-toplevel
    epochs = callbacks.EpochTimer()
    history = model4.fit(train_dataset, epochs=args.epochs, validation_data=validation_dataset,
                         verbose=2, callbacks=[epochs])
    fit_seconds = time.perf_counter() - fit_start
    _, accuracy = model4.evaluate(validation_dataset, verbose=0)
    train_images = sum(int(y.shape[0]) for _, y in train_dataset)
    result = {
        'accuracy': float(accuracy),
        'val_accuracy': [float(v) for v in history.history['val_accuracy']],
        'fit_seconds': fit_seconds,
        'epoch_seconds': epochs.seconds,
        'train_images': train_images,
        'epochs': args.epochs,
        'train_images_per_second': train_images * args.epochs / fit_seconds,
        'wall_seconds': time.perf_counter() - start,
    }
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(result, f, indent=1)
    print(json.dumps(result))
    return 0


if __name__ == '__main__':
    sys.exit(main())
