"""The four strategies. Each module states its legs and economics; :mod:`.two_legs` does the rest."""
