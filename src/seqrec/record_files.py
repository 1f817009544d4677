"""The files of a run folder and of a sweep folder, named once. Standard library only: `seqrec.compare`
reads them without torch."""

RUN_FILE = "run.json"  # status, config, metrics, fingerprints (seqrec.records)
HISTORY_FILE = "history.jsonl"  # one line per validation
RANKS_FILE = "test_ranks.parquet"  # the 1-based rank of every test target
CHECKPOINT_FILE = "best.pt"  # the best weights so far, while training
SWEEP_FILE = "multirun.yaml"  # Hydra writes it at the root of every multirun sweep folder
