"""The left-padded window of the PyTorch port and of the Keras tutorial: attention sees the padding.

Every row sits at the right end of a max_seq_len window; its padding slots enter the first layer as
padding_slots() (zero vectors in the PyTorch port) and are never masked, so real positions also attend to
them (the fewer events a user has, the more of them). Slot s has position max_seq_len - 1 - s, so the newest
item is always position 0. Dropout on the embeddings at rate `dropout`, before the window is built.
"""

from __future__ import annotations

import torch

from seqrec.layers import Rows
from seqrec.model import SasRecBackbone


class LeftPaddedSasRec(SasRecBackbone):
    """Subclasses set `embedding_dropout` and pass layout="padded" and position_order="backward"."""

    def padding_slots(self, positions: torch.Tensor) -> torch.Tensor | float:
        """The encoder input of the padding slots with these [B, F] positions ([B, F, D], or a scalar)."""
        return 0.0

    def embed(self, inputs: torch.Tensor, lengths: torch.Tensor, users=None) -> tuple[torch.Tensor, Rows]:
        """-> the window [B, F, D] (F = max_seq_len) and its Rows (every slot real, the last at F - 1)."""
        x, _ = super().embed(inputs, lengths, users)  # right-padded [B, L, D]
        x = self.embedding_dropout(x)
        frame_len, (batch_size, _, dim), device = self.max_seq_len, x.shape, x.device
        # Window slot s holds right-padded position s - (F - length), or padding where that is < 0.
        source = torch.arange(frame_len, device=device)[None, :] - (frame_len - lengths)[:, None]
        frame = x.gather(1, source.clamp(min=0)[..., None].expand(batch_size, frame_len, dim))
        positions = torch.arange(frame_len - 1, -1, -1, device=device).expand(batch_size, frame_len)
        frame = torch.where((source >= 0)[..., None], frame, self.padding_slots(positions))
        last = torch.arange(batch_size, device=device) * frame_len + frame_len - 1
        return frame, Rows(positions, torch.full_like(lengths, frame_len), None, last)

    def forward(self, inputs: torch.Tensor, lengths: torch.Tensor, users=None) -> torch.Tensor:
        """[B, L, D] right-padded, read from the window's slots (padding positions: garbage, ignored)."""
        frame = super().forward(inputs, lengths, users)
        (batch_size, seq_len), frame_len = inputs.shape, self.max_seq_len
        slots = (frame_len - lengths)[:, None] + torch.arange(seq_len, device=inputs.device)[None, :]
        slots = slots.clamp(max=frame_len - 1)[..., None].expand(batch_size, seq_len, frame.shape[-1])
        return frame.gather(1, slots)
