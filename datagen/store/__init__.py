"""The Zarr v3 dataset store (SPEC §5): schema, writer and reader.

    from datagen.store import create_store, write_sequence, open_store

See docs/store.md for the layout, the complete-flag protocol and a reader example.
"""

from datagen.store.reader import SequenceInfo, Store, open_store
from datagen.store.schema import ARRAYS, DEFAULT_LAYOUT, SCHEMA_VERSION, SPLITS, Layout, check_version
from datagen.store.writer import create_store, write_sequence

__all__ = [
    "ARRAYS", "DEFAULT_LAYOUT", "SCHEMA_VERSION", "SPLITS", "Layout", "SequenceInfo", "Store",
    "check_version", "create_store", "open_store", "write_sequence",
]
