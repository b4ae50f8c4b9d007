"""``fairseq-train`` that also records every training mask, for the end-to-end tests.

Usage: ``python tests/mask_recording_train.py RECORD.jsonl <fairseq-train arguments>``.
Each rank appends one JSON line per training sequence to ``RECORD.jsonl.rank<R>``:
``{"epoch", "id", "masked"}``, ``masked`` being the masked positions of the
sequence. The recording wraps the criterion; the product code is untouched.
"""

import json
import sys

import torch.distributed as dist
from fairseq_cli import train

from genemask_plugin.criterions.genemask_mlm import GeneMaskMLMLoss
from genemask_plugin.tasks.genemask_mlm import GeneMaskMLMTask


def main():
    record_path, sys.argv = sys.argv[1], [sys.argv[0], *sys.argv[2:]]
    epoch = {"now": 0}
    begin_epoch, forward = GeneMaskMLMTask.begin_epoch, GeneMaskMLMLoss.forward

    def recording_begin_epoch(self, e, model):
        epoch["now"] = e
        return begin_epoch(self, e, model)

    def recording_forward(self, model, sample, reduce=True):
        if model.training and sample["target"].numel():
            rank = dist.get_rank() if dist.is_initialized() else 0
            masked = sample["target"].ne(self.padding_idx)
            with open(f"{record_path}.rank{rank}", "a") as handle:
                for row, index in enumerate(sample["id"].tolist()):
                    positions = masked[row].nonzero().view(-1).tolist()
                    handle.write(json.dumps({"epoch": epoch["now"], "id": index, "masked": positions}) + "\n")
        return forward(self, model, sample, reduce)

    GeneMaskMLMTask.begin_epoch = recording_begin_epoch
    GeneMaskMLMLoss.forward = recording_forward
    train.cli_main()


if __name__ == "__main__":
    main()
