"""Deployment: ONNX export and verification, onnxruntime sessions, INT8 quantization, predict.

Importing ``tlbench.deploy.predict`` or ``tlbench.deploy.ort`` imports no torch.
"""
