"""Benchmarks of nflow against PyTorch implementations of the same models (``python -m benchmarks``).

Not part of the installed package: run from a source checkout. ``torch_models`` holds the PyTorch twins,
``weights`` the weight transfer, ``run`` the runner that writes ``RESULTS.md``.
"""
