"""lakepaper."""
