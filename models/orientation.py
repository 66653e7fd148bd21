"""EXIF orientation: a photo whose EXIF says "rotated" or "mirrored" is decoded upright.

Cameras and phones store the sensor's pixels as they came and an EXIF Orientation tag
(1-8) saying how to turn them for display; TensorFlow's decoders ignore the tag, so a
phone photo taken in portrait would reach the model lying on its side. Everything that
decodes a photo for the model goes through `decode_upright` (models/preprocessing.py:
the Transform graph, hence training, evaluation and the exported serving signatures;
the data-quality features), and everything that reports a photo's width and height
(models/profile.py, the monitor's reference and traffic profiles) through
`models/image_header.py`'s `upright_size`, so both agree with what the model sees.

TensorFlow has no EXIF parser, so `exif_orientation` reads the tag with string and
byte ops inside the graph: it finds the APP1 "Exif" segment and looks the tag up in its
first image file directory (IFD0), in either byte order. It
runs in the exported SavedModel, so a server that only runs the signature (ours, TF
Serving) serves rotated photos upright too. Only JPEG files carry the tag this way
(PNG's rarely used eXIf chunk is not read, by the graph or by the header reader).
TensorFlow is imported inside the graph functions.
"""

from models.image_header import UPRIGHT

# The EXIF tag that holds the orientation (TIFF tag 274); its values are in
# models/image_header.py.
ORIENTATION_TAG = 0x0112
# Bytes read from the start of a file when looking for the Exif segment. An APP1 segment
# holds at most 64 KiB and comes before the image data, after at most a few other
# segments (JFIF, another APP1 with XMP, ICC profiles can come first): 256 KiB covers
# the files phones and cameras write; a file whose Exif starts later is read as upright.
HEADER_BYTES = 1 << 18
# Entries of IFD0 searched for the tag (cameras write 10-20).
MAX_IFD_ENTRIES = 128

# What an APP1 segment holding EXIF starts with.
_EXIF_HEADER = b'Exif\x00\x00'


def exif_orientation(image_bytes):
    """The EXIF orientation (1-8) of one encoded image, read in the graph.

    Finds the first "Exif\\0\\0" in the file's first HEADER_BYTES (a scan for a byte
    string, no loop over segments: in a JPEG's image data every FF byte is followed by
    00 or a restart marker, so the APP1 marker FF E1 that must precede it cannot occur
    there by chance), then reads the TIFF header after it and the entries of IFD0.

    Args:
      image_bytes: a scalar string tensor, the file's bytes.

    Returns:
      A scalar int32 tensor: the Orientation tag of a JPEG's Exif IFD0, or 1 (upright)
      when there is none, it is out of range or the bytes are not a JPEG.
    """
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    size = tf.cast(tf.strings.length(image_bytes), tf.int64)

    def read(offset, length):
        """`length` bytes from `offset` as int64, zeros past the end (or before the start)."""
        within = tf.clip_by_value(tf.cast(offset, tf.int64), 0, size)
        raw = tf.io.decode_raw(tf.strings.substr(image_bytes, within, tf.constant(
            length, tf.int64)), tf.uint8)
        raw = tf.cast(raw, tf.int64)
        return tf.pad(raw, [[0, length - tf.size(raw)]])

    parts = tf.strings.split(tf.strings.substr(image_bytes, 0, HEADER_BYTES),
                             sep=_EXIF_HEADER, maxsplit=1)
    at = tf.cast(tf.strings.length(parts[0]), tf.int64)       # where "Exif\\0\\0" starts
    start, marker = read(0, 2), read(at - 4, 2)
    found = tf.logical_and(tf.size(parts) > 1, tf.logical_and(
        tf.reduce_all(tf.equal(start, [0xFF, 0xD8])),          # a JPEG's start of image
        tf.reduce_all(tf.equal(marker, [0xFF, 0xE1]))))        # the APP1 segment's marker
    tiff = at + len(_EXIF_HEADER)
    header = read(tiff, 8)
    little = tf.equal(header[0], 0x49)                        # "II": Intel order, else "MM"

    def u16(values, offset):
        first, second = tf.gather(values, offset), tf.gather(values, offset + 1)
        return tf.where(little, first + second * 256, first * 256 + second)

    def u32(values, offset):
        low, high = u16(values, offset), u16(values, offset + 2)
        return tf.where(little, low + high * 65536, low * 65536 + high)

    table = read(tiff + u32(header, 4), 2 + 12 * MAX_IFD_ENTRIES)   # IFD0
    # An entry: tag (2 bytes), type (2), count (4), value (4; a SHORT sits in its first 2).
    entries = 2 + 12 * tf.range(MAX_IFD_ENTRIES, dtype=tf.int64)
    listed = tf.range(MAX_IFD_ENTRIES, dtype=tf.int64) < u16(table, 0)
    is_orientation = tf.logical_and(listed, tf.equal(u16(table, entries), ORIENTATION_TAG))
    value = tf.reduce_max(tf.where(is_orientation, u16(table, entries + 8), 0))
    valid = tf.logical_and(found, tf.logical_and(value >= 1, value <= 8))
    return tf.cast(tf.where(valid, value, UPRIGHT), tf.int32)


def apply_orientation(image, orientation):
    """Turns a decoded image [height, width, channels] upright for an EXIF orientation.

    The same transpositions as Pillow's `ImageOps.exif_transpose` (a test compares them
    for all eight values). 5-8 swap height and width.
    """
    import tensorflow as tf  # pylint: disable=import-outside-toplevel

    def transpose(x):
        # Not tf.transpose: a graph holding a Transpose makes oneDNN write an error line
        # ("supports DT_UINT8 only on platforms with AVX-512") to stderr on CPUs like ours,
        # whatever its dtype; Einsum does the same swap without it (in float32: exact for
        # uint8, which Einsum does not take).
        return tf.cast(tf.einsum('hwc->whc', tf.cast(x, tf.float32)), x.dtype)

    branches = [
        lambda: image,                                          # 1: upright
        lambda: tf.reverse(image, [1]),                         # 2: mirrored
        lambda: tf.reverse(image, [0, 1]),                      # 3: upside down
        lambda: tf.reverse(image, [0]),                         # 4: mirrored upside down
        lambda: transpose(image),                               # 5: transposed
        lambda: tf.reverse(transpose(image), [1]),              # 6: turned left (rotate right)
        lambda: tf.reverse(transpose(image), [0, 1]),           # 7: transverse
        lambda: tf.reverse(transpose(image), [0]),              # 8: turned right (rotate left)
    ]
    return tf.switch_case(tf.clip_by_value(orientation, 1, 8) - 1, branches)


def decode_upright(image_bytes, channels: int = 3):
    """One encoded image (scalar string) -> uint8 [height, width, channels], upright.

    TensorFlow's decoder (JPEG, PNG, BMP, the first frame of a GIF), then the EXIF
    orientation applied.
    """
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    image = tf.io.decode_image(image_bytes, channels=channels, expand_animations=False)
    return apply_orientation(image, exif_orientation(image_bytes))

