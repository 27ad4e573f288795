"""Training the caption agents the PathGen way: data, supervised fine-tuning, evaluation.

- :mod:`data` — ``agent_data_from_run`` / ``build_agent_data``: the describe, revise (with recorded
  corruptions, :mod:`corrupt` over the :mod:`vocab` terms) and summarize sets, in three formats;
- :mod:`sft` — the TRL glue (one small module); :mod:`train` — ``train_agent``: merged model + card;
- :mod:`evaluate` — ``evaluate_agent``: revise / describe / summarize metrics, JSON + markdown.

Nothing is imported here, so ``import pathgen.agents.training`` stays free.
"""
