"""LLM architectures from Hugging Face configs, exact parameter counts and the memory model."""
