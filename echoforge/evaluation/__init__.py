"""Measurements of a built corpus: unit quality, alignment accuracy (``echoforge eval-units``)."""
