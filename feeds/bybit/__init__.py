"""Bybit v5: spot and linear order books, linear funding from tickers, instrument metadata. Pure code."""
