"""molvae: a SELFIES VAE toolkit for molecular design."""

__version__ = "0.1.0"
