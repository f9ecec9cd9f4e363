"""Where logits come from, in process: torch (`pytorch`, any Hugging Face model dir) and llama.cpp
(`llamacpp`, GGUF). Both run the same decode loop (`decode`): KV reuse across keystrokes, token
healing, workspace mixing and copy drafts on the logits row, stop checks and cancellation."""
