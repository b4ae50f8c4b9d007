"""``genemask-validate``: held-out loss of pretrained checkpoints under fixed shared masks (:mod:`.shared_mask_loss`)."""
