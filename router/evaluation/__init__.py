"""Offline work on routing data: importers, training, evaluation, calibration, profiling,
graders and the code sandbox."""
