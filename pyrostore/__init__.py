"""Pyrostore: streaming storage that never forgets.

Archives Kafka topics forever into object storage (a local folder, S3 or GCS) as content-addressed Parquet
segments with a per-partition tree index, and reads past and present as one stream.
"""

from pyrostore import errors

__version__ = "0.1.0"
__all__ = ["__version__", "errors"]
