"""Tasks, heads, prompts and training loops on exact features (THEORY.md 3-6)."""
