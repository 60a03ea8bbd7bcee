"""``reiqa diagnose`` and ``reiqa fit-diagnosis``: what is wrong with a photo, and where.

- ``run``: diagnose files (``ReIQA.diagnose_files``) into a CSV / JSON Lines / JSON file or a
  table, with heat maps on request;
- ``maps``: the heat map of a photo (the model's score on overlapping crops, laid over it);
- ``fit``: a diagnosis head for a model, fitted on renderings of the distortion engine (all 26
  types x 5 levels, labelled by ``reiqa.distortions.issues``) of photos of your choice.

The head itself (its numbers, its files, ``predict``) is ``reiqa.diagnosis``, which scoring loads
without this package. Nothing is imported here: ``fit`` needs scikit-learn, ``maps`` matplotlib.
"""
