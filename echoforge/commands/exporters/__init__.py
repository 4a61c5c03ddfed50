"""Trainer formats for ``echoforge export``, one module per format, each registered by name."""

from echoforge.commands.exporters.base import ExportOptions, Exporter, exporters, safe_name
from echoforge.commands.exporters import echox, echox_dialogues, lhotse_shar, nemo, webdataset  # noqa: F401  (register)

__all__ = ["ExportOptions", "Exporter", "exporters", "safe_name"]
