"""Matplotlib figures for the reports, returned as PNG bytes.

One function per kind of picture, shared by the data-validation report and the
run report. Images come in as encoded bytes and are decoded with TF's decoder,
the same one the model uses.
"""

import io
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

from matplotlib import ticker
from matplotlib.figure import Figure
import numpy as np

# (picture, caption): a picture is an HxWx3 uint8 array.
Tile = Tuple[np.ndarray, str]
_THUMB = 160


def _subplots(nrows: int = 1, ncols: int = 1, *, figsize, squeeze: bool = True):
    """A Figure of its own and its axes. Figures made this way need no pyplot, so no
    process-wide backend choice and nothing to close."""
    fig = Figure(figsize=figsize)
    return fig, fig.subplots(nrows, ncols, squeeze=squeeze)


def _png(fig: Figure) -> bytes:
    out = io.BytesIO()
    fig.savefig(out, format='png', dpi=80, bbox_inches='tight')
    return out.getvalue()


def decode_thumbnail(encoded: bytes, size: int = _THUMB) -> np.ndarray:
    """Decodes image bytes to an RGB uint8 array, shrunk to at most size x size."""
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    image = tf.io.decode_image(encoded, channels=3, expand_animations=False)
    image = tf.image.resize(image, (size, size), preserve_aspect_ratio=True, antialias=True)
    return np.clip(image.numpy(), 0, 255).astype(np.uint8)


def thumbnail_png(encoded: bytes, size: int = 96) -> bytes:
    """A small PNG of an encoded image (decoded as the model decodes it), at most size a side."""
    from PIL import Image  # pylint: disable=import-outside-toplevel
    out = io.BytesIO()
    Image.fromarray(decode_thumbnail(encoded, size)).save(out, 'PNG')
    return out.getvalue()


def crowded(class_names: Sequence[str]) -> bool:
    """Whether class names side by side (axis ticks, table columns) would collide: many
    classes or long names."""
    return len(class_names) > 6 or max(map(len, class_names), default=0) > 12


def _slant_if_crowded(ax, class_names: Sequence[str]) -> None:
    """Slants the class names under the x axis when they would overwrite each other."""
    if crowded(class_names):
        ax.tick_params(axis='x', labelrotation=30)
        for label in ax.get_xticklabels():
            label.set_horizontalalignment('right')


def label_counts(counts_by_split: Mapping[str, Mapping[str, int]],
                 title: str = 'Images per class') -> bytes:
    """Grouped bar chart: one group per class, one bar per split, counts on the bars."""
    splits = list(counts_by_split)
    class_names = sorted({label for counts in counts_by_split.values() for label in counts})
    fig, ax = _subplots(figsize=(1.6 + 1.4 * len(class_names), 3.2))
    width = 0.8 / max(len(splits), 1)
    for i, split in enumerate(splits):
        values = [counts_by_split[split].get(label, 0) for label in class_names]
        bars = ax.bar(np.arange(len(class_names)) + i * width, values, width, label=split)
        ax.bar_label(bars)
    ax.set_xticks(np.arange(len(class_names)) + width * (len(splits) - 1) / 2, class_names)
    _slant_if_crowded(ax, class_names)
    ax.set_ylabel('images')
    ax.set_title(title)
    ax.legend()
    return _png(fig)


def image_grid(rows: Sequence[Tuple[str, Sequence[Tile]]], title: Optional[str] = None,
               tile_inches: float = 2.2) -> bytes:
    """A grid of pictures: one row per (row title, tiles); the tutorial's plot_animals."""
    ncols = max((len(tiles) for _, tiles in rows), default=1) or 1
    fig, axes = _subplots(len(rows), ncols, squeeze=False,
                             figsize=(tile_inches * ncols, tile_inches * len(rows) + 0.3))
    for r, (row_title, tiles) in enumerate(rows):
        for c in range(ncols):
            ax = axes[r][c]
            ax.axis('off')
            if c < len(tiles):
                picture, caption = tiles[c]
                ax.imshow(picture)
                ax.set_title(caption or row_title, fontsize=9)
    if title:
        fig.suptitle(title)
    return _png(fig)


def histograms(series: Mapping[str, Sequence[Tuple[float, float, float]]], title: str,
               xlabel: str) -> bytes:
    """Step histograms from (low, high, count) buckets, one line per series."""
    fig, ax = _subplots(figsize=(5, 3.2))
    for name, buckets in series.items():
        if buckets:
            edges = [b[0] for b in buckets] + [buckets[-1][1]]
            ax.stairs([b[2] for b in buckets], edges, label=name)
    ax.set_xlabel(xlabel)
    ax.set_ylabel('images')
    ax.set_title(title)
    ax.legend()
    return _png(fig)


def history_curves(history: Mapping[str, Sequence[float]], title: str) -> bytes:
    """The tutorial's plot_history: accuracy and loss per epoch, training vs validation.

    When history has `fine_tune_from_epoch`, a vertical line marks where fine-tuning
    started (in green, as in the tutorial's fine-tuning plot).
    """
    fine_tune_from = history.get('fine_tune_from_epoch')
    fig, axes = _subplots(1, 2, figsize=(10, 3.4))
    for ax, metric in zip(axes, ('accuracy', 'loss')):
        for key, name in ((metric, 'training'), (f'val_{metric}', 'validation')):
            values = history.get(key)
            if values:
                ax.plot(range(1, len(values) + 1), values, marker='o', label=name)
        if fine_tune_from:
            ax.axvline(fine_tune_from + 0.5, color='tab:green', linestyle='--',
                       label='start fine-tuning')
        ax.xaxis.set_major_locator(ticker.MaxNLocator(integer=True))
        ax.set(xlabel='epoch', ylabel=metric, title=f'Training vs Validation {metric.title()}')
        ax.legend()
    fig.suptitle(title)
    return _png(fig)


def confusion_matrix(matrix: Sequence[Sequence[float]], class_names: Sequence[str]) -> bytes:
    """Counts with true label on rows and predicted label on columns."""
    values = np.asarray(matrix, dtype=float)
    fig, ax = _subplots(figsize=(1.5 + 1.1 * len(class_names), 1.2 + 1.1 * len(class_names)))
    ax.imshow(values, cmap='Blues')
    for (i, j), v in np.ndenumerate(values):
        ax.text(j, i, f'{v:g}', ha='center', va='center',
                color='white' if v > values.max() / 2 else 'black')
    ax.set_xticks(range(len(class_names)), class_names)
    ax.set_yticks(range(len(class_names)), class_names)
    _slant_if_crowded(ax, class_names)
    ax.set_xlabel('predicted')
    ax.set_ylabel('true')
    ax.set_title('Confusion matrix')
    return _png(fig)


def bars(values: Dict[str, float], title: str, xlabel: str) -> bytes:
    """Horizontal bars, e.g. seconds per component."""
    names: List[str] = list(values)
    fig, ax = _subplots(figsize=(6, 0.4 * len(names) + 1))
    rects = ax.barh(names, [values[n] for n in names])
    ax.bar_label(rects, fmt='%.1f')
    ax.invert_yaxis()
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    return _png(fig)


def metric_by_variant(histories: Mapping[str, Mapping[str, Sequence[float]]],
                      metrics: Sequence[str] = ('val_accuracy', 'accuracy'),
                      title: str = 'Model variants') -> bytes:
    """The tutorial's model comparison: one panel per metric, one line per variant.

    Args:
      histories: variant name -> per-epoch metric lists (Trainer's history.json).
      metrics: history keys, one panel each.
      title: the figure's title.

    Returns:
      PNG bytes.
    """
    fig, axes = _subplots(1, len(metrics), squeeze=False, figsize=(5 * len(metrics), 3.4))
    for ax, metric in zip(axes[0], metrics):
        for name, history in histories.items():
            values = history.get(metric)
            if values:
                ax.plot(range(1, len(values) + 1), values, marker='o', label=name)
        ax.set(xlabel='epoch', ylabel=metric, title=metric)
        ax.xaxis.set_major_locator(ticker.MaxNLocator(integer=True))
        ax.legend()
    fig.suptitle(title)
    return _png(fig)


def trials(losses: Sequence[float], accuracies: Sequence[float], best: int,
           title: str = 'Tuner trials') -> bytes:
    """A search's trials in the order run: validation loss (what it minimizes) and
    validation accuracy per trial, the best trial marked.

    Args:
      losses: each trial's validation loss.
      accuracies: each trial's validation accuracy.
      best: the best trial's index.
      title: the figure's title.

    Returns:
      PNG bytes.
    """
    fig, axes = _subplots(1, 2, figsize=(10, 3.4))
    numbers = list(range(1, len(losses) + 1))
    for ax, values, name in zip(axes, (losses, accuracies),
                                ('validation loss', 'validation accuracy')):
        ax.plot(numbers, values, marker='o', linestyle=':', label='trial')
        ax.plot([best + 1], [values[best]], marker='*', markersize=16, linestyle='',
                color='tab:orange', label='best')
        ax.xaxis.set_major_locator(ticker.MaxNLocator(integer=True))
        ax.set(xlabel='trial (1: the defaults)', ylabel=name, title=name)
        ax.legend()
    fig.suptitle(title)
    return _png(fig)


def to_uint8(images: np.ndarray, low: float = -1.0, high: float = 1.0) -> np.ndarray:
    """Float pictures in [low, high] (e.g. the Transform output) -> uint8 for imshow."""
    scaled = (np.asarray(images, dtype=np.float32) - low) / (high - low) * 255.0
    return np.clip(np.round(scaled), 0, 255).astype(np.uint8)
