"""Fitted models as serving reads them: trees, calibration, lifetime value, send time.

Only NumPy and LightGBM's predictor here: a decision imports nothing that training needs.
"""
