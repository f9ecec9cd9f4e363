"""codeparrot-lsp language server: JavaScript code completion from a local causal language model."""

__version__ = "0.1.0"
