"""SpectralNet and SpectralNetAE: the estimators, the spectral network with its orthonormalization layer."""
