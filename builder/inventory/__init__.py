"""The site inventory: loaded and validated once, then frozen typed models."""
