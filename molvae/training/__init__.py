"""Training: the loop, losses and KL schedules, latent diagnostics."""
