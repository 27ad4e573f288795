"""Representative-patch selection (the `select` stage).

`library` (attribute prompts per TCGA project, a YAML data file) and `findings` (report ->
findings) give the texts; `select` scores a slide's tiles against them and spreads the rest of
the per-slide budget over k-means clusters (`kmeans`); `dedup` removes near-duplicates across
the whole run; `stage.select_stage` ties them to the run directory.
"""
