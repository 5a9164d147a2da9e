"""The k-means baseline (scikit-learn's KMeans)."""
