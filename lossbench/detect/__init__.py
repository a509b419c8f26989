"""Noisy-label detectors. Importing this package registers every detector."""

from lossbench.detect import confident, recov  # noqa: F401  (registration)
from lossbench.detect.base import (
    DETECTORS,
    DetectContext,
    Detection,
    Detector,
    NoDetection,
    detection_scores,
    register_detector,
)

__all__ = [
    "DETECTORS",
    "DetectContext",
    "Detection",
    "Detector",
    "NoDetection",
    "detection_scores",
    "register_detector",
]
