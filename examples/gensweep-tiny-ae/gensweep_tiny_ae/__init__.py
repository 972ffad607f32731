"""A tiny autoencoder registered with gensweep through the entry-point group gensweep.models."""
