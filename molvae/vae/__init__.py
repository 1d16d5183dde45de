"""The VAE: model (layers, encode/decode), checkpoint format, learned prior, sampling, likelihoods, conditions."""
