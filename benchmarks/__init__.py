"""Benchmarks: nflow against NumPy twins, the machine's measured rooflines and PyTorch. See RESULTS.md."""
