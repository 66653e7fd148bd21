"""tf.data settings shared by everything that iterates a dataset in our processes."""

import tensorflow as tf


def no_autotune_thread() -> tf.data.Options:
    """tf.data options without the autotuning model's background thread.

    TF 2.16 destroys an iterator only once that thread wakes from its sleep,
    which doubles after each optimisation up to 60 s: an iterator that lived
    for a minute could take most of another minute to go. Seen at the end of
    the Trainer's fit (at random; gdb: ~IteratorResource waiting on
    Model::OptimizeLoop). Without the thread, AUTOTUNE map parallelism is the
    number of cores and prefetch buffers size themselves (legacy autotune):
    the same epoch times here, measured (docs/benchmarks.md).
    """
    options = tf.data.Options()
    options.autotune.enabled = False
    return options
