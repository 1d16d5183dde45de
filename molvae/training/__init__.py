"""Training: the loop (``train``), its preparation, schedules, validation, run state and
distributed context; losses and KL schedules; latent diagnostics."""
