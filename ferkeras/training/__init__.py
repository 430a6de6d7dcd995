"""Two-phase training: freeze rules and compile settings per phase, resumable runs."""
