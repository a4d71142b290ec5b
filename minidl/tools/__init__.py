"""The command-line tools and what they build on: ``train``, ``evaluate``, ``predict`` and
``plot`` (the minidl-train/-eval/-predict/-plot commands), ``checkpoint`` (atomic training
checkpoints), ``run_logs`` (steps.csv and TensorBoard) and ``summary`` (per-layer shapes,
parameters and MACs).

``import minidl`` does not import this package; ``minidl.summary`` loads it on first use.
"""
