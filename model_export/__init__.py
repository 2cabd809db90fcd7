"""Tokenglass's exporter: trained transformers (HF folders, hub ids, GGUF) to ONNX model folders.

torch, transformers, optimum and onnx live here only; the app (desktop/) never imports this
package. Entry points: `model_export.api.export()` and `python -m model_export`.
"""
