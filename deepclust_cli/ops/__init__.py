"""Numerics two or more parts of deepclust share: k-means, nearest neighbors, clustering metrics
and the geometric object families (GeoCluster and its object datasets).

This file imports nothing, so config schemas can name what the numerics offer without torch."""

KNN_BACKENDS = ("auto", "exact", "ivf", "hnsw", "annoy")  # neighbors.knn's back ends
