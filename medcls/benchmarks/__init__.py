"""Speed checks of medcls against plain PyTorch: what ``scripts/benchmark.py`` runs and the README reports."""
