"""Inference without training dependencies: predictor, faces, smoothing, runner.

Nothing here imports TensorFlow unless a ``.keras`` model is loaded, so the
edge install (numpy, OpenCV, ai-edge-litert) runs ``.tflite`` models.
"""
