"""seqrec: which training objective should I use for my sequential recommender, and how sure am I?"""

__version__ = "0.1.0"


def __getattr__(name: str):
    # `import seqrec` stays light: the model code (torch, hydra) loads on first use of seqrec.load.
    if name == "load":
        from seqrec.recommender import load

        return load
    raise AttributeError(f"module 'seqrec' has no attribute {name!r}")
