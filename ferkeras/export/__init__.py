"""Export: TFLite (float32/float16/dynamic/int8), ONNX and SavedModel, with parity checks."""
