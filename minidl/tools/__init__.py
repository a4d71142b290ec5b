"""The command-line tools and what they build on: ``train``, ``evaluate`` and ``predict``
(the minidl-train/-eval/-predict commands), ``checkpoint`` (atomic training
checkpoints) and ``summary`` (per-layer shapes, parameters and MACs).

``import minidl`` does not import this package; ``minidl.summary`` loads it on first use.
"""
