"""Binance spot, USD-M and COIN-M: wire schemas and the pure market-data protocol."""
