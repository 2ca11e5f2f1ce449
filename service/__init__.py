"""The live service: LSL ingestion, per-stream online pipeline built from a bundle manifest, ONNX Runtime
engine, REST/WebSocket API, dashboard and metrics. Comes with the service issue; never imports torch.
"""
