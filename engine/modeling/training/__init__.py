"""The parts of `python -m engine.modeling.train` (engine/modeling/train.py, the command line).

distributed.py     rank, world size, device and collectives (one process or torchrun)
batches.py         this rank's slice of a step's global batch; fixed held-out views
optimizer.py       AdamW parameter groups and the warm-up + cosine learning rate
tokenizer_task.py  what a tokenizer step trains, evaluates and keeps (optional GAN term)
mage_task.py       what a transformer step trains, evaluates and keeps
trainer.py         the loop both tasks share: steps, time budget, evaluation, resume
progress.py        the per-step log (log_KIND.jsonl) and the progress line
checkpoints.py     checkpoint files: atomic writes, checked reads, models built from them
model_card.py      MODEL_CARD.md sections on how the checkpoints of a bundle were trained
commands.py        `tokenizer` / `mage` (one training run) and `export` (a bundle)
"""
