"""Python SDK, LSL simulator with ground truth, recording replay and the ``m2s`` CLI.

Comes with the clients issue.
"""
