"""Model variants: the reference ports of SASRec beside seqrec's own block (seqrec.model), one module each.

- sasrec_pytorch_port: the public PyTorch port of the original SASRec code (experiment=sasrec_original)
- sasrec_tf2_port: Microsoft Recommenders' TF2 port (experiment=ms_recommenders)
- sasrec_keras_port: the in-batch tutorial's Keras block (experiment=two_tower, model=two_tower_keras_port)
- left_padding: the left-padded window whose padding slots attention sees (the PyTorch and Keras ports)
- legacy: the model configs of runs recorded before the variants, mapped to them

Each is a subclass of seqrec.model.SasRecBackbone that owns its block, layout quirks and initialisation, and
is picked with `model=<name>` (conf/model/<name>.yaml).
"""
