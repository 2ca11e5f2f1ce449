"""Dataset loaders, protocols and windowing, pretraining, fine-tuning, evaluation, reports and ONNX export.

Comes with the dataset and model issues; features come from ``signals`` only.
"""
