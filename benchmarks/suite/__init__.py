"""Pieces of the benchmark suite that ``benchmarks/run_all.py`` strings together.

Each module has one job (inputs, end-to-end runs, live runs, quality, pictures, plots,
report); every contender is run through the project's own public API — ``create_backend``,
the pipeline and the evaluation runner — never through a private copy of their logic.
"""
