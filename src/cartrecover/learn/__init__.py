"""Training: fits the models that decisions use, from the store's logged decisions and orders.

Training-only libraries (scikit-learn, SciPy's optimisers) are imported here and nowhere on the serving path;
what serving needs of a fitted model lives in `cartrecover.models`.
"""
