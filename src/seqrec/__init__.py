"""seqrec: which training objective should I use for my sequential recommender, and how sure am I?"""

__version__ = "0.1.0"
