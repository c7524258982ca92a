"""OKX v5: order books (every instrument type), funding rates and instrument metadata. Pure code."""
