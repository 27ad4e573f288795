"""Quilt-style curation: image-text pairs from narrated histopathology videos.

A folder of local videos becomes pathgen shards (``source=video``): a transcript per video (a
``.vtt``/``.srt`` sidecar, else ASR), cleaned into medical statements (an LLM through the engine
and journal, or rules), frames chosen per shot (stable, histology, deduplicated, cropped to the
slide area) and each kept frame paired with the text spoken while it was on screen.

Modules: ``decode`` (PyAV frames and 16 kHz audio), ``shots`` (content-difference shot cuts),
``stable`` (SSIM of crops, stable runs), ``classify`` / ``features`` / ``head`` (histology-frame
classifiers), ``crop``, ``transcript`` (sidecars), ``asr``, ``text`` (chunks, rules, vocabulary),
``clean_llm``, ``align``, ``stage`` (per-video work, resume, error rows, the dataset),
``synth`` (videos built from real patches for tests and the benchmark).
"""
