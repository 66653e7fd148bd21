"""The CPU a default run's image passes need at the least, against issue 40's limit.

    python bench/cpu_budget.py [--data-root DIR] [--images N] [--image-size S]

Issue 40's limit counts only the frozen base's forward passes (2,000 x 3 training views,
2 x 1,000 eval photos) at the XNNPACK float32 rate. Each of those images must also be
decoded and resized, and each augmented training view augmented (the tutorial's flip and
rotation, in TensorFlow), on the same cores. Measured side by side here on the same photos
(CPU seconds of this process per image, every thread counted):

  decode     encoded JPEG -> 3 channels -> bilinear resize -> [-1, 1] (models/preprocessing.py,
             what the Transform graph does), batches of 32
  augment    the model's own augmentation layers in training mode, on decoded pixels,
             batches of 32 (and each layer alone)
  forward    the base + pooling in XNNPACK float32 on every core (tflite_base.FrozenBase),
             batches of 32: its wall time x cores (the limit's own cost; its spinning
             threads make its measured CPU time meaningless)

and the floor they put under a default run on the tutorial data (the pipeline's counts:
DataQuality decodes and runs all 3,000 photos; the Trainer decodes the 2,000 training
photos again, augments 2 views of each and runs them; the Evaluator decodes and runs the
1,000 eval photos), as seconds on all cores and as a multiple of the limit: what the
pipeline's wall time could be if nothing else ran and the cores never waited.
"""

import argparse
import glob
import os
import sys
import time

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

BATCH = 32
# A default run on the tutorial data (bench/pipeline_vs_notebook.py --augmented-views 3).
TRAIN, EVAL, AUGMENTED_VIEWS = 2000, 1000, 2


def _cost(step, count: int, rounds: int = 2):
    """(wall, CPU) seconds per image of step() over `count` images, the faster round."""
    best = None
    for _ in range(rounds):
        wall, cpu = time.perf_counter(), time.process_time()
        step()
        found = ((time.perf_counter() - wall) / count, (time.process_time() - cpu) / count)
        best = found if best is None or found[0] < best[0] else best
    return best


def main() -> int:
    from pipeline import configs  # pylint: disable=import-outside-toplevel
    from bench import photos  # pylint: disable=import-outside-toplevel
    parser = argparse.ArgumentParser(description=__doc__.split('\n', maxsplit=1)[0])
    parser.add_argument('--data-root',
                        default=str(configs.SHARED / 'datasets' / 'cats_and_dogs_filtered'))
    parser.add_argument('--images', type=int, default=192)
    parser.add_argument('--image-size', type=int, default=photos.pipeline_image_size())
    args = parser.parse_args()
    from runlog import noise  # pylint: disable=import-outside-toplevel
    noise.quiet_tensorflow()
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    import tf_keras as keras  # pylint: disable=import-outside-toplevel
    from models import builders  # pylint: disable=import-outside-toplevel
    from models import preprocessing  # pylint: disable=import-outside-toplevel
    from models import tflite_base  # pylint: disable=import-outside-toplevel

    size = (args.image_size, args.image_size)
    paths = sorted(glob.glob(os.path.join(args.data_root, 'train', '*', '*.jpg')))[:args.images]
    encoded = [open(p, 'rb').read() for p in paths]
    count = len(encoded)
    chunks = range(0, count, BATCH)
    decode = tf.function(lambda batch: preprocessing.preprocess_images(batch, size))
    decode(tf.constant(encoded[:BATCH]))
    costs = {'decode': _cost(lambda: [decode(tf.constant(encoded[i:i + BATCH])).numpy()
                                      for i in chunks], count)}
    pixels = decode(tf.constant(encoded)).numpy()
    keras.utils.set_random_seed(0)
    model = builders.build_transfer_model(size, 2, weights=configs.SHARED_WEIGHTS, seed=0)
    base = tflite_base.FrozenBase(model, configs.SHARED_WEIGHTS, size)
    base(pixels[:BATCH])                                        # load, check
    base.augmented(pixels[:BATCH])                              # trace
    costs['augment'] = _cost(lambda: [base.augmented(pixels[i:i + BATCH]).numpy()
                                      for i in chunks], count)
    layers = model.get_layer(builders.AUGMENTATION_LAYER).layers
    for layer in layers:
        alone = tf.function(lambda x, layer=layer: layer(x, training=True))
        alone(pixels[:BATCH])
        costs[f'  {layer.name}'] = _cost(lambda alone=alone: [
            alone(pixels[i:i + BATCH]).numpy() for i in chunks], count)
    cores = os.cpu_count() or 1
    wall, _ = _cost(lambda: [base(pixels[i:i + BATCH]) for i in chunks], count)
    costs['forward'] = (wall, wall * cores)
    print(f'{count} photos at {args.image_size}, {cores} cores, load average '
          f'{os.getloadavg()[0]:.1f}; per image:')
    for name, (wall, cpu) in costs.items():
        print(f'  {name:22s} {1e3 * cpu:6.2f} CPU ms  ({1e3 * wall:6.2f} ms wall)')
    decode_cpu, augment_cpu, forward_cpu = (costs[k][1] for k in ('decode', 'augment', 'forward'))
    forwards = TRAIN * (AUGMENTED_VIEWS + 1) + 2 * EVAL
    limit = forwards * forward_cpu / cores
    decoded = (TRAIN + EVAL) + TRAIN + EVAL          # DataQuality, the Trainer, the Evaluator
    floor = (forwards * forward_cpu + decoded * decode_cpu
             + TRAIN * AUGMENTED_VIEWS * augment_cpu) / cores
    print(f'\nissue 40\'s limit: {forwards} forward passes at XNNPACK\'s rate = {limit:.1f} s')
    print(f'with the {decoded} decodes and {TRAIN * AUGMENTED_VIEWS} augmentations they need: '
          f'{floor:.1f} s = {floor / limit:.2f}x the limit (on {cores} cores that never wait)')
    print(f'of which decoding {decoded * decode_cpu / cores:.1f} s, augmenting '
          f'{TRAIN * AUGMENTED_VIEWS * augment_cpu / cores:.1f} s')
    return 0


if __name__ == '__main__':
    sys.exit(main())
