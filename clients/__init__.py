"""Clients of the M2S-live service: the Python SDK (``clients.sdk``), the LSL simulator with ground truth,
recording replay to LSL, and the ``m2s`` command line (simulate, replay, predict, watch).
"""
