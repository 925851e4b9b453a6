"""MRI: Music Recommendation by Image."""
