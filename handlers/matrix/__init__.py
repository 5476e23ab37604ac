"""Matrix adapter (matrix-nio): cards as HTML messages, buttons as reactions."""
