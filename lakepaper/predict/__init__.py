"""Stage 04: sliding-window inference over whole tiles (paper section 2.3)."""
