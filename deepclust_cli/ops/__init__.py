"""Numerics two or more parts of deepclust share: k-means, nearest neighbors, clustering metrics
and the geometric object families (GeoCluster and its object datasets)."""
