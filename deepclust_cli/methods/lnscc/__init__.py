"""LNSCC: the estimator, its fuzzy kNN graph, its residual MLP and PCA projection."""
