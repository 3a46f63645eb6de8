"""Export: the formats table, TFLite conversion and quantization, parity checks, metadata."""
