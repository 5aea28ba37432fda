"""beamsearch: beam search over WHAT/HOW prompt pairs to find the best image for an idea."""

__version__ = "0.1.0"
