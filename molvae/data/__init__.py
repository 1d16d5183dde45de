"""Datasets, SMILES readers, token caches and length-bucketed batches."""

from molvae.data.datasets import DATASETS, dataset_path, load_dataset, load_opt_logp
from molvae.data.readers import SmilesList, read_smiles, resolve_smiles_source
from molvae.data.samplers import BucketBatchSampler
from molvae.data.tokens import TokenData, tokenize_file

__all__ = [
    "DATASETS",
    "load_dataset",
    "dataset_path",
    "load_opt_logp",
    "read_smiles",
    "resolve_smiles_source",
    "SmilesList",
    "TokenData",
    "tokenize_file",
    "BucketBatchSampler",
]
