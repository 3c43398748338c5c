"""Import and export of tabular files (CSV, JSON Lines).

- :func:`import_file` reads a file through an :class:`ImportMapping` (a TOML file saying which
  column is which field) or in our own export layout, streaming, in one transaction, reporting
  every bad row (:class:`ImportReport`, :class:`RowError`).
- :func:`export` writes any kind of record back out; an export imports into a fresh store without
  loss (deal histories travel as ``events``).
"""

from __future__ import annotations

from ._exporter import EXPORT_KINDS, columns_for, export, export_rows
from ._importer import ImportReport, RowError, import_file
from ._mapping import IMPORT_KINDS, ImportMapping, ImportMappingError

__all__ = [
    "EXPORT_KINDS",
    "IMPORT_KINDS",
    "ImportMapping",
    "ImportMappingError",
    "ImportReport",
    "RowError",
    "columns_for",
    "export",
    "export_rows",
    "import_file",
]
