"""The Qt-free engine: model folders, tokenization, ONNX Runtime sessions, sampling, generation.

Imports only numpy, onnxruntime, tokenizers and jinja2. Never Qt, torch or transformers.
"""
