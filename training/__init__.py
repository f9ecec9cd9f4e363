"""Training module: data pipeline (`training.data`), tokenizer trainer, fine-tuning and evaluation."""
