"""The command line: ``ocml`` (``root.py``) and ``ocml-train`` (``train.py``); it parses and calls.

Every command lives here and no other room imports it; the shared option vocabulary is
``options.py``. TensorFlow, pygame and matplotlib are imported only when a command runs.
"""
