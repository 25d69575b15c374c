"""The dataset layer: one Dataset type, four sources selected by a spec string."""
from urllm.data.dataset import SPLITS, Dataset, Example, User
from urllm.data.errors import DataError
from urllm.data.spec import SOURCES, load_dataset, parse_spec

__all__ = ["SPLITS", "SOURCES", "Dataset", "DataError", "Example", "User", "load_dataset", "parse_spec"]
