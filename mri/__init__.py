"""MRI: Music Recommendation by Image."""
from mri.utils.precision import register_precision_resolver

register_precision_resolver()  # before any config of the package is composed
