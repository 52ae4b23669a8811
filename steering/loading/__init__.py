"""Base models and tokenizers: by hub id or local directory, from a GGUF file, or tiny random
stand-ins, plus the published shapes of the paper's models for planning before a download.

- ``loader``: a base model and its tokenizer as the protocol loads them; the device a
  process uses
- ``gguf``: a GGUF file -> an ordinary Hugging Face model directory
- ``tiny``: random-weight models of every supported architecture and a project-built
  tokenizer, so hub code paths run offline
- ``public_configs``: the four paper models' shapes (no download, no torch)

May import: the top-level modules (``steering.architectures``, ``steering.data``) and
``runtime``.
"""
