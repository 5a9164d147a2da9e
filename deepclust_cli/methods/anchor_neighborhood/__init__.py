"""AND, Anchor Neighbourhood Discovery: the estimator, its memory bank and its batch augmentation."""
