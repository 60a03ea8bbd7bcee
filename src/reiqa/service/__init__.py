"""``reiqa serve``: an HTTP scoring service and a page to sort photos by quality.

Needs the ``serve`` extra (FastAPI, uvicorn, python-multipart): ``pip install 'reiqa[serve]'``.
``app`` builds the ASGI app around a loaded model, ``batching`` groups concurrent requests for
the encoders, ``uploads`` reads multipart bodies in memory, ``server`` binds and runs it.
"""
