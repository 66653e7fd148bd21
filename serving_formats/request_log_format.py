"""The request log's record format, shared by its writer (the server,
serving/request_log.py) and its readers (monitoring/).

One JSON object per line; the log rotates by size as
logging.handlers.RotatingFileHandler does (LOG, then LOG.1 the newest rotated
file ... LOG.N the oldest). A record:

    {"time": "2024-05-01T12:00:00.123456Z", "model": "cats_dogs",
     "version": 3, "signature": "serving_default", "api": "predict",
     "entrypoint": "REST", "status": "OK", "http_status": 200,
     "latency_ms": 12.3, "images": [{"bytes": 23817, "sha256": "...",
     "width": 500, "height": 375, "label": "cat", "score": 0.93}]}

Each entry of `images` describes one encoded image of the request; `b64` (the
image bytes, base64) is there only when the server logs image bytes.
"""

# Record keys.
TIME = 'time'            # ISO 8601, UTC, with a trailing Z
VERSION = 'version'      # the model version that answered
API = 'api'              # predict, classify or regress
ENTRYPOINT = 'entrypoint'  # REST or GRPC
STATUS = 'status'        # the request's status code name
IMAGES = 'images'
OK = 'OK'                # STATUS of a request that was answered

# Image entry keys.
IMAGE_BYTES = 'bytes'    # size of the encoded image
IMAGE_SHA256 = 'sha256'
IMAGE_WIDTH = 'width'    # from the image header; null when not an image
IMAGE_HEIGHT = 'height'
IMAGE_B64 = 'b64'        # the encoded image, base64 (only with image bytes logged)
IMAGE_LABEL = 'label'    # the answer's class name
IMAGE_SCORE = 'score'    # the answer's probability
