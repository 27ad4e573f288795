"""Evaluation of image–text models the way the pathology literature does it.

- :mod:`~pathgen.evaluate.benchmarks`: the registry (classes, synonyms, templates, loader per dataset);
- :mod:`~pathgen.evaluate.loaders`: each dataset's published on-disk layout;
- :mod:`~pathgen.evaluate.metrics`, :mod:`~pathgen.evaluate.probe`: zero-shot, retrieval, linear probe,
  few-shot, on plain arrays;
- :mod:`~pathgen.evaluate.run`: ``evaluate()``, what ``pathgen eval`` calls; results via
  :mod:`~pathgen.evaluate.report`.
"""
