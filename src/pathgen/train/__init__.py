"""CLIP training through open_clip_train: config (:mod:`~pathgen.train.config`), argument building
(:mod:`~pathgen.train.argv`), the process entry point (:mod:`~pathgen.train.launch`), the stage runner
(:mod:`~pathgen.train.run`, ``train()``) and the model export + card (:mod:`~pathgen.train.export`).
"""
