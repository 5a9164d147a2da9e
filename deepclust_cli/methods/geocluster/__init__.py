"""GeoCluster: the estimator, its teachers, its tree and its stacked students."""
