"""``ferkeras serve``: an HTTP/WebSocket service and a browser page (the ``[serve]`` extra).

See docs/serve.md. Built on the edge runtime (LiteRT/ONNX): no TensorFlow.
"""
