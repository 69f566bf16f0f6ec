"""noisereg: train neural networks with injected noise, and measure what the noise does."""

__version__ = "0.1.0"

__all__ = ["__version__"]
