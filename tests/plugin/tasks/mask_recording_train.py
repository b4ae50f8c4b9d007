"""``fairseq-train`` that also records every training mask, for the end-to-end tests.

Usage: ``python tests/mask_recording_train.py RECORD.jsonl <fairseq-train arguments>``.
Each rank appends one JSON line per training sequence to ``RECORD.jsonl.rank<R>``:
``{"epoch", "update", "id", "masked", "global", "batch"}``, ``masked`` being the masked
positions of the sequence, ``global`` whether its batch's masked tokens count as global spans
(a CM-GEMS curriculum chose its global_pmi candidate) and ``batch`` the ids of its batch. The recording
wraps the criterion and the task's train step; the product code is untouched.
"""

import json
import sys

import torch.distributed as dist
from fairseq_cli import train

from genemask_plugin.criterions.genemask_mlm import GeneMaskMLMLoss
from genemask_plugin.tasks.genemask_mlm import GeneMaskMLMTask


def main():
    record_path, sys.argv = sys.argv[1], [sys.argv[0], *sys.argv[2:]]
    epoch = {"now": 0, "update": None}
    begin_epoch, forward = GeneMaskMLMTask.begin_epoch, GeneMaskMLMLoss.forward
    train_step = GeneMaskMLMTask.train_step

    def recording_train_step(self, sample, model, criterion, optimizer, update_num, ignore_grad=False):
        epoch["update"] = None if ignore_grad else update_num  # dummy batches are not recorded
        return train_step(self, sample, model, criterion, optimizer, update_num, ignore_grad)

    def recording_begin_epoch(self, e, model):
        epoch["now"] = e
        return begin_epoch(self, e, model)

    def recording_forward(self, model, sample, reduce=True):
        if model.training and sample["target"].numel() and epoch["update"] is not None:
            rank = dist.get_rank() if dist.is_initialized() else 0
            masked = sample["target"].ne(self.padding_idx)
            with open(f"{record_path}.rank{rank}", "a") as handle:
                batch = sample["id"].tolist()
                for row, index in enumerate(batch):
                    positions = masked[row].nonzero().view(-1).tolist()
                    row_record = {"epoch": epoch["now"], "update": epoch["update"], "id": index, "masked": positions,
                                  "global": bool(sample.get("spans_are_global", False)), "batch": batch}
                    handle.write(json.dumps(row_record) + "\n")
        return forward(self, model, sample, reduce)

    GeneMaskMLMTask.begin_epoch = recording_begin_epoch
    GeneMaskMLMTask.train_step = recording_train_step
    GeneMaskMLMLoss.forward = recording_forward
    train.cli_main()


if __name__ == "__main__":
    main()
