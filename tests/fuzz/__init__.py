"""Coverage-guided fuzzing: targets, seed corpus and the short CI run."""
