"""Slide-level tasks: multiple-instance learning (MIL) on per-slide tile features.

``h5`` the feature files (CLAM / TRIDENT layout), ``extract`` the `pathgen features` stage,
``labels`` slide labels and the published label files (CAMELYON16/17, BRACS), ``bags`` which slides
can be used (bad input as rows) and streaming them one at a time, ``models`` mean-pool / ABMIL /
ACMIL, ``protocol`` splits, ``train`` the training loop with early stopping, ``metrics`` slide
metrics, ``report`` results files, ``heatmap`` attention over the slide thumbnail.
"""
