"""Objective heads: one module per objective, each an `Objective` mapping queries and positives to a loss."""
