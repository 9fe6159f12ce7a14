"""The learning-rate engine: the composed rate the optimizer reads.

`composer.py` composes the callbacks' contributions (resolved once per fit)
into one schedule installed on the optimizer; `table.py` is what the
compiled step reads: one gather per step.
"""
