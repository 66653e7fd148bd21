"""What a run on this machine uses when its command line does not say (local_runner.py):
the photos and weights in ../shared when they are there, else the tutorial's data set
(downloaded once into Keras' cache) and Keras' own ImageNet weights."""

import os

import tf_keras

from pipeline import configs

TUTORIAL_DATA_URL = 'https://storage.googleapis.com/mledu-datasets/cats_and_dogs_filtered.zip'


def download_tutorial_data() -> str:
    """Downloads (once) and extracts the tutorial's data set; returns its folder."""
    path = tf_keras.utils.get_file('cats_and_dogs.zip', origin=TUTORIAL_DATA_URL, extract=True)
    return os.path.join(os.path.dirname(path), 'cats_and_dogs_filtered')


def data_root() -> str:
    """configs.SHARED_DATA_ROOT when it exists, else the tutorial's data set."""
    if os.path.isdir(configs.SHARED_DATA_ROOT):
        return configs.SHARED_DATA_ROOT
    return download_tutorial_data()


def weights() -> str:
    """configs.SHARED_WEIGHTS when the file exists, else 'imagenet' (Keras downloads it)."""
    return configs.SHARED_WEIGHTS if os.path.isfile(configs.SHARED_WEIGHTS) else configs.IMAGENET
