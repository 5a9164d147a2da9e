"""The spectral-clustering baseline (scikit-learn's SpectralClustering on our kNN graph)."""
