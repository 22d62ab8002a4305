"""Pyrostore: streaming storage that never forgets.

Archives Kafka topics forever into object storage (a local folder, S3 or GCS) as content-addressed Parquet
segments with a per-partition tree index, and reads past and present as one stream.
"""

from pyrostore import errors
from pyrostore.archive import open_archive
from pyrostore.consumer import Consumer, DeserializingConsumer
from pyrostore.store import open_store

__version__ = "0.1.0"
__all__ = ["Consumer", "DeserializingConsumer", "__version__", "errors", "open_archive", "open_store"]
