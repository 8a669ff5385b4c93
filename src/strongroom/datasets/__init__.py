"""Datasets: uploads built into immutable, encrypted Parquet dataset versions."""
