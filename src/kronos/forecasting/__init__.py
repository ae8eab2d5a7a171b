"""Series, tables, schedules, paths, calibration and KronosPredictor: the one public core."""
