"""The knee ROI now lives in the package (edgeosteo/knee_roi.py) so that training and the
runtime share one implementation; this module keeps the tools' imports working."""

from edgeosteo.knee_roi import *  # noqa: F403
from edgeosteo.knee_roi import PARAMS, Knee, crop_knee, detect_knees, percentile_normalise

__all__ = ["PARAMS", "Knee", "crop_knee", "detect_knees", "percentile_normalise"]
