"""The dataset: writers of what people train on, and readers of pairs that already exist.

- :func:`pathgen.export.stage.export_stage` turns a captioned run into ``RUN/export/``:
  ``pathgen.json`` (released PathGen-1.6M schema), ``shards/NNNNN.tar`` (webdataset:
  ``KEY.jpg/.txt/.json``, ``sizes.json``), ``index.parquet``, the card ``README.md`` and
  ``gallery.html``.
- :func:`pathgen.export.materialise.materialise` reads released records' patches from your slides.
- :func:`pathgen.export.ingest.ingest` normalises Quilt-1M / CSV / parquet / ARCH / webdataset pairs
  into the same shards and reports exact and near duplicates; :mod:`pathgen.export.mixing` defines
  the mixing manifest training reads.

Nothing is imported here, so ``import pathgen.export`` stays free.
"""
