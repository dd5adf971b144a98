"""Greff et al.'s "LSTM: A Search Space Odyssey" (2017), rerun on lstmlab's tasks.

- `search`: the random search (the same trials for every variant);
- `tasks`: each task trained through its recipe (lm, longlag's adding problem, music);
- `runner`: the trials in parallel processes, resumable through ``trials.jsonl``;
- `report`: best trials, Welch's t-test against vanilla, the figures, the markdown;
- `cli`: ``lstmlab odyssey``.

The variants are `lstmlab.models.recurrent.GREFF_VARIANTS`.
"""
