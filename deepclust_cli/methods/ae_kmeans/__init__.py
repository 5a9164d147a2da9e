"""The autoencoder + k-means baseline: k-means on the codes of an autoencoder trained on the input."""
