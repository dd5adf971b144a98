"""The long-time-lag experiments of Hochreiter & Schmidhuber (1997) and two modern standards.

- tasks: `task_base` (the task interface), `tasks`, `reber`, `modern_tasks`, `task_registry`;
- runs: `experiment` (one run on the shared trainer, summaries), `contenders` (matched
  LSTM / GRU / RNN configs), `runner` (jobs in parallel), `suites`, `results`, `config`;
- `cli` (`lstmlab longlag`), `recipe` (the registry's hooks), `inspect` and `cells` (the report).
"""

from lstmlab.recipes.longlag.recipe import LongLagRecipe

RECIPE = LongLagRecipe()
