"""The captioning agents: describe -> revise -> summarize, with versioned prompt files.

- :mod:`pathgen.agents.stage` — ``caption_stage(run, cfg, limit=None, dry_run=False)``, the stage;
- :mod:`pathgen.agents.results` — ``load_caption_records(run)``, what export reads;
- :mod:`pathgen.agents.describe`, :mod:`revise`, :mod:`summarize` — the agents, on :mod:`base`;
- :mod:`pathgen.agents.checks` — output checks (empty, refusal, repetition, language, cut-off);
- :mod:`pathgen.agents.fit` — the exact open_clip 77-token fit;
- ``prompts/<agent>/<version>.txt`` — the prompts (``### system``, ``### user``, ``### reask`` ...).

Nothing is imported here, so ``import pathgen.agents`` stays free.
"""
