"""Budget-fair tuning of objectives: `python -m seqrec.tune` (see __main__)."""
