"""Near-duplicates: one photo resized, re-encoded, cropped, mirrored, brightened or slightly
rotated, within a split or across splits (across train and a held-out split: a leak).

Two signals; either makes a pair:

- Embedding similarity: the cosine of the frozen base's features after a square root,
  centring and shrinkage whitening (each principal direction of the data set's features
  scaled by 1 / sqrt(its variance + the variance of direction WHITEN_RANK)). Whitening
  damps the directions every photo of a class shares (a cat's face) and lifts the
  photo-specific ones, which is what tells a copy from a look-alike: on the tutorial's
  photos the plain cosine of two different black dogs reaches that of a photo and its
  8-degree rotation, the whitened one does not (docs/data_quality.md).
- Perceptual hash (pHash): 63 bits, the signs of the low frequencies of a 32x32 grey
  thumbnail's DCT against their median; a resized, re-encoded or brightened copy differs
  in a few bits, a mirrored one is compared with the hash of the mirrored thumbnail.

No all-pairs comparison beyond EXACT_SEARCH_MAX_PHOTOS photos:
- embeddings: exact nearest neighbours by blocks of matrix products up to that many
  photos; beyond, an inverted file: k-means cells (about sqrt(N), fitted on a sample)
  and each photo compared with the photos of its PROBES nearest cells only;
- hashes: 4 bands of 16 bits; only photos sharing a band's value are compared (any two
  hashes within 3 bits share one: pigeonhole).
docs/scale.md states the cost at 1M photos.
"""

from typing import Dict, List, Sequence, Tuple

import numpy as np

from components.data_quality import settings

# Hash bits two photos may differ in and still be a pair (any similarity).
HASH_MAX_BITS = 3
# Side of the grey thumbnail hashed.
THUMBNAIL_SIDE = 32
# Shrinkage whitening: directions beyond this rank (by variance) are equalised; never
# more than a quarter of the photos, so a small data set is not whitened on noise.
WHITEN_RANK = 64
# Nearest neighbours kept per photo: more near-copies of one photo than this within the
# data set are found through each other, not all pairwise.
NEIGHBOURS = 10
# Up to this many photos the embedding search is exact; beyond, an inverted file.
EXACT_SEARCH_MAX_PHOTOS = 20_000
# Inverted file: cells compared per photo, photos the k-means is fitted on.
PROBES = 4
CELL_SAMPLE = 100_000
# Rows of a block of the exact search (a block's similarities: rows x photos floats).
BLOCK_ROWS = 1024
# Photos of one hash bucket compared (a larger bucket is a flat or blank picture shared by
# many photos; they are still compared through their embeddings).
HASH_BUCKET_MAX = 256
_BANDS = 4
_BAND_BITS = 16


def embed(features: np.ndarray, whiten_rank: int = WHITEN_RANK) -> np.ndarray:
    """Unit vectors [photos, D] whose dot products are the pairs' similarities.

    Square root, centring, shrinkage whitening, unit length (module docstring). The
    covariance is accumulated by blocks, so the features may be memory-mapped.
    """
    count, dims = features.shape
    if count < 2:
        return np.zeros((count, dims), np.float32)
    mean = np.zeros(dims)
    for start in range(0, count, BLOCK_ROWS * 8):
        mean += np.sqrt(np.maximum(features[start:start + BLOCK_ROWS * 8], 0)).sum(axis=0)
    mean /= count
    covariance = np.zeros((dims, dims))
    for start in range(0, count, BLOCK_ROWS * 8):
        block = np.sqrt(np.maximum(features[start:start + BLOCK_ROWS * 8], 0)) - mean
        covariance += block.T @ block
    covariance /= count
    variances, axes = np.linalg.eigh(covariance)
    variances, axes = np.maximum(variances[::-1], 0.0), axes[:, ::-1]
    floor = variances[min(whiten_rank, max(1, count // 4), dims - 1)]
    projection = (axes / np.sqrt(variances + max(floor, 1e-12))).astype(np.float32)
    out = np.empty((count, dims), np.float32)
    for start in range(0, count, BLOCK_ROWS * 8):
        block = np.sqrt(np.maximum(features[start:start + BLOCK_ROWS * 8], 0)) - mean
        out[start:start + len(block)] = block.astype(np.float32) @ projection
    out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
    return out


def _merge_top(best_index, best_similarity, rows, index, similarity, k):
    """Keeps the k most similar of the current best and new candidates of `rows`."""
    all_index = np.concatenate([best_index[rows], index], axis=1)
    all_similarity = np.concatenate([best_similarity[rows], similarity], axis=1)
    top = np.argpartition(-all_similarity, k - 1, axis=1)[:, :k]
    best_index[rows] = np.take_along_axis(all_index, top, axis=1)
    best_similarity[rows] = np.take_along_axis(all_similarity, top, axis=1)


def _block_top(block_similarity: np.ndarray, k: int) -> Tuple[np.ndarray, np.ndarray]:
    k = min(k, block_similarity.shape[1])
    top = np.argpartition(-block_similarity, k - 1, axis=1)[:, :k]
    return top, np.take_along_axis(block_similarity, top, axis=1)


def nearest_exact(embeddings: np.ndarray, k: int = NEIGHBOURS) -> Tuple[np.ndarray, np.ndarray]:
    """(indices, similarities) [photos, k] of each photo's k most similar others (-1 and
    -inf where there are fewer), by blocks of BLOCK_ROWS rows."""
    count = len(embeddings)
    best_index = np.full((count, k), -1, np.int64)
    best_similarity = np.full((count, k), -np.inf, np.float32)
    for start in range(0, count, BLOCK_ROWS):
        rows = np.arange(start, min(start + BLOCK_ROWS, count))
        similarity = embeddings[rows] @ embeddings.T
        similarity[np.arange(len(rows)), rows] = -np.inf           # not its own neighbour
        top, values = _block_top(similarity, k)
        _merge_top(best_index, best_similarity, rows, top, values, k)
    return best_index, best_similarity


def _by_cell(cells_of_rows: np.ndarray, cells: int) -> List[np.ndarray]:
    """For each cell, the rows that list it in `cells_of_rows` [rows, any]."""
    flat = cells_of_rows.ravel()
    rows = np.repeat(np.arange(len(cells_of_rows)), cells_of_rows.shape[1])
    order = np.argsort(flat, kind='stable')
    bounds = np.searchsorted(flat[order], np.arange(cells + 1))
    return [rows[order[bounds[c]:bounds[c + 1]]] for c in range(cells)]


def nearest_clustered(embeddings: np.ndarray, k: int = NEIGHBOURS, *, probes: int = PROBES,
                      cells: int = 0, seed: int = 0) -> Tuple[np.ndarray, np.ndarray]:
    """Approximately nearest_exact, comparing each photo only with the photos of its
    `probes` nearest k-means cells (cells: about sqrt(photos) when 0)."""
    from sklearn.cluster import MiniBatchKMeans  # pylint: disable=import-outside-toplevel
    count = len(embeddings)
    cells = cells or max(1, int(np.sqrt(count)))
    rng = np.random.default_rng(seed)
    sample = embeddings[np.sort(rng.choice(count, min(count, CELL_SAMPLE), replace=False))]
    centres = MiniBatchKMeans(cells, random_state=seed, n_init=1, batch_size=4096).fit(
        sample).cluster_centers_.astype(np.float32)
    probes = min(probes, cells)
    home = np.empty(count, np.int64)
    probed = np.empty((count, probes), np.int64)
    for start in range(0, count, BLOCK_ROWS):
        to_centres = embeddings[start:start + BLOCK_ROWS] @ centres.T
        order = np.argsort(-to_centres, axis=1)[:, :probes]
        home[start:start + len(order)], probed[start:start + len(order)] = order[:, 0], order
    best_index = np.full((count, k), -1, np.int64)
    best_similarity = np.full((count, k), -np.inf, np.float32)
    members = _by_cell(home[:, None], cells)
    askers = _by_cell(probed, cells)
    for cell in range(cells):
        queries, cell_members = askers[cell], members[cell]
        if not len(queries) or not len(cell_members):
            continue
        for start in range(0, len(queries), BLOCK_ROWS):
            rows = queries[start:start + BLOCK_ROWS]
            similarity = embeddings[rows] @ embeddings[cell_members].T
            similarity[rows[:, None] == cell_members[None, :]] = -np.inf
            top, values = _block_top(similarity, k)
            padded = np.full((len(rows), k), -1, np.int64)
            padded_values = np.full((len(rows), k), -np.inf, np.float32)
            padded[:, :top.shape[1]] = cell_members[top]
            padded_values[:, :top.shape[1]] = values
            _merge_top(best_index, best_similarity, rows, padded, padded_values, k)
    return best_index, best_similarity


def nearest(embeddings: np.ndarray, k: int = NEIGHBOURS,
            exact_max: int = EXACT_SEARCH_MAX_PHOTOS) -> Tuple[np.ndarray, np.ndarray, str]:
    """Each photo's k nearest others: exact up to exact_max photos, else clustered;
    (indices, similarities, the method's name)."""
    if len(embeddings) <= exact_max:
        return (*nearest_exact(embeddings, k), 'exact')
    return (*nearest_clustered(embeddings, k), 'inverted file')


def perceptual_hashes(thumbnails: np.ndarray) -> np.ndarray:
    """pHash [photos] uint64 of grey thumbnails [photos, side, side]: bit i says whether
    the i-th lowest DCT frequency (the constant one left out, 63 in all) is above their
    median."""
    from scipy import fft  # pylint: disable=import-outside-toplevel
    low = fft.dctn(np.asarray(thumbnails, np.float64), axes=(1, 2), norm='ortho')[:, :8, :8]
    low = low.reshape(len(thumbnails), 64)[:, 1:]
    bits = (low > np.median(low, axis=1, keepdims=True)).astype(np.uint64)
    return (bits << np.arange(63, dtype=np.uint64)).sum(axis=1, dtype=np.uint64)


_POPCOUNT16 = np.array([bin(value).count('1') for value in range(1 << 16)], np.uint8)


def hamming(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Bits in which uint64 hashes differ, element-wise (a 16-bit table: 4 bytes of work
    memory per pair)."""
    differing = np.ascontiguousarray(np.bitwise_xor(a, b), np.uint64)
    return _POPCOUNT16[differing.view(np.uint16).reshape(-1, 4)].sum(axis=1, dtype=np.int64)


def hash_candidates(hashes: np.ndarray, mirrored: np.ndarray, *,
                    max_bits: int = HASH_MAX_BITS) -> np.ndarray:
    """Pairs [n, 2] (i < j) of photos whose hashes (one possibly mirrored) are within
    max_bits, found among the photos whose hash, or one's hash and the other's mirrored
    hash, share a band of _BAND_BITS bits (any two within 3 bits share one).

    Vectorised over a band's buckets: the k-th step pairs each member of a bucket with
    the member k places after it (k < the bucket's size, at most HASH_BUCKET_MAX), and
    keeps only the pairs within max_bits. A band's buckets hold about 2N / 2^16 photos
    each, so the candidates grow as N^2 while the pairs kept grow with the duplicates.
    """
    count = len(hashes)
    ids = np.concatenate([np.arange(count), np.arange(count)])
    values = np.concatenate([hashes, mirrored]).astype(np.uint64)
    pairs = [np.zeros((0, 2), np.int64)]
    for band in range(_BANDS):
        keys = (values >> np.uint64(band * _BAND_BITS)) & np.uint64((1 << _BAND_BITS) - 1)
        order = np.argsort(keys, kind='stable')
        sorted_keys, sorted_ids = keys[order], ids[order]
        starts = np.flatnonzero(np.r_[True, sorted_keys[1:] != sorted_keys[:-1]])
        sizes = np.diff(np.r_[starts, len(order)])
        position = np.arange(len(order)) - np.repeat(starts, sizes)
        compared = np.repeat(np.minimum(sizes, HASH_BUCKET_MAX), sizes)
        for step in range(1, int(min(sizes.max(initial=0), HASH_BUCKET_MAX))):
            first = np.flatnonzero(position[:-step] + step < compared[:-step])
            a, b = sorted_ids[first], sorted_ids[first + step]
            a, b = np.minimum(a, b), np.maximum(a, b)
            a, b = a[a != b], b[a != b]
            close = hash_distance(hashes, mirrored, a, b) <= max_bits
            pairs.append(np.stack([a[close], b[close]], axis=1))
    return np.unique(np.concatenate(pairs), axis=0)


def hash_distance(hashes: np.ndarray, mirrored: np.ndarray, a: np.ndarray,
                  b: np.ndarray) -> np.ndarray:
    """Bits between photos a and b's hashes, or a's hash and b's mirrored one if fewer."""
    return np.minimum(hamming(hashes[a], hashes[b]), hamming(hashes[a], mirrored[b]))


def find_pairs(embeddings: np.ndarray, hashes: np.ndarray, mirrored: np.ndarray, *,
               similarity: float = settings.SIMILARITY, hash_max_bits: int = HASH_MAX_BITS,
               exact_max: int = EXACT_SEARCH_MAX_PHOTOS) -> Dict[str, object]:
    """Near-duplicate pairs: embedding similarity >= `similarity` among each photo's
    nearest neighbours, or hashes (one possibly mirrored) within `hash_max_bits`.

    Returns:
      {'pairs': int [n, 2] (i < j), 'similarity': float [n] (the embeddings' cosine),
      'hash_distance': int [n], 'search': the embedding search's method}, pairs by
      decreasing similarity.
    """
    index, values, method = nearest(embeddings, NEIGHBOURS, exact_max)
    rows, columns = np.nonzero(values >= similarity)
    by_embedding = np.stack([rows, index[rows, columns]], axis=1)
    by_hash = hash_candidates(hashes, mirrored, max_bits=hash_max_bits)
    candidates = np.concatenate([by_embedding, by_hash]).astype(np.int64)
    candidates = np.unique(np.sort(candidates, axis=1), axis=0).reshape(-1, 2)
    a, b = candidates[:, 0], candidates[:, 1]
    distance = hash_distance(hashes, mirrored, a, b)
    cosine = np.einsum('ij,ij->i', embeddings[a], embeddings[b]) if len(a) else np.zeros(0)
    keep = (cosine >= similarity) | (distance <= hash_max_bits)
    order = np.argsort(-cosine[keep], kind='stable')
    return {'pairs': candidates[keep][order], 'similarity': cosine[keep][order],
            'hash_distance': distance[keep][order], 'search': method}


def leaks(pairs: np.ndarray, splits: Sequence[str], train: str,
          held_out: Sequence[str]) -> Dict[str, List[int]]:
    """For each held-out split, its photos (indices) with a near-copy in `train`."""
    splits = np.asarray(splits)
    found: Dict[str, List[int]] = {name: [] for name in held_out}
    for a, b in pairs:
        for photo, other in ((a, b), (b, a)):
            if splits[other] == train and splits[photo] in found:
                found[splits[photo]].append(int(photo))
    return {name: sorted(set(photos)) for name, photos in found.items()}
