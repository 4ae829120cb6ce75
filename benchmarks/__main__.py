"""`python -m benchmarks`: the nflow-vs-PyTorch runner (benchmarks/run.py)."""
from benchmarks.run import main

main()
