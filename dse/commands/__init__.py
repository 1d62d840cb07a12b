"""One module per CLI command: ``run(args) -> dict`` and ``render(result, args) -> str``."""
