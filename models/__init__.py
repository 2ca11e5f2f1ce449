"""The M2S network and the bundle/manifest format with the model repository.

Comes with the model issues; the manifest part must never import torch.
"""
