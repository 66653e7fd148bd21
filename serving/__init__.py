"""A model server that speaks TensorFlow Serving's REST and gRPC APIs.

The modules are imported on demand; importing this package does nothing.
"""
